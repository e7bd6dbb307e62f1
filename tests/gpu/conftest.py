"""Tests that need a CUDA device (``make test-gpu``). On a machine without one they are not
collected by ``make test`` (tests/conftest.py) and asking for them explicitly is an error."""

import pytest
import torch

if not torch.cuda.is_available():
    raise pytest.UsageError("tests/gpu needs a CUDA device; this machine has none")
