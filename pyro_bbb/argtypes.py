"""argparse ``type=`` functions shared by the CLI and the benchmark scripts, and the training
scripts' entry point.

Each type turns one command-line word into a checked value or raises ``ArgumentTypeError``
naming what was expected, which argparse prints as a one-line ``error:`` (exit status 2).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

__all__ = ["int_at_least", "number_in", "positive_float", "positive_int", "run_script",
           "seed"]


def int_at_least(minimum: int) -> Callable[[str], int]:
    """Integers ≥ ``minimum``."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


def number_in(low: float, high: float, *, include_low: bool = False, include_high: bool = False,
              what: str | None = None) -> Callable[[str], float]:
    """Finite floats in the interval from ``low`` to ``high`` (open ends unless included)."""
    interval = f"{'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
    what = what or f"a number in {interval}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        above = value >= low if include_low else value > low
        below = value <= high if include_high else value < high
        if not (math.isfinite(value) and above and below):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


positive_int = int_at_least(1)
positive_float = number_in(0.0, math.inf, what="a positive finite number")


def seed(text: str) -> int:
    """A random seed: an integer in [0, 2**32)."""
    value = int_at_least(0)(text)
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {value}")
    return value


def run_script(main: Callable[[list[str] | None], int], argv: list[str] | None,
               interrupted: str, failures: tuple[type[Exception], ...] | None = None) -> int:
    """``main(argv)`` with a failure (default: a diverged training, ``NonFiniteLossError``,
    whose message says what to change; exit status 1) and Ctrl-C (``interrupted`` says what was
    kept; 130) reported in one line."""
    if failures is None:
        from .infer import NonFiniteLossError

        failures = (NonFiniteLossError,)
    try:
        return main(argv)
    except failures as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: {interrupted}", file=sys.stderr)
        return 130
