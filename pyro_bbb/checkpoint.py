"""Save and load a fitted BayesianMLP + MeanFieldGuide, safe by construction.

A checkpoint is a plain dict written with ``torch.save``::

    {"format": "pyro_bbb.checkpoint", "version": 1,
     "model_spec": model.spec(),            # nested dicts/lists of str, int, float, bool, None
     "guide_state": guide.state_dict(),     # loc/rho tensors per site, stored on the CPU
     "guide_init": {"kind": "mean_field", ...},
     "metadata": {...},                     # JSON-like values only
     "training_state": {...} or absent}     # TrainingState.to_dict(include_guide=False)

The optional ``training_state`` (added in pyro_bbb 0.2 without a version bump: readers that
predate it ignore it) lets training resume exactly: optimizer state dict, RNG states as uint8 /
int64 tensors, epoch / minibatch / step counters, the history as lists of numbers, and mid-epoch
the epoch's permutation; the guide parameters are those of ``guide_state``.

Loading first checks the zip archive's CRC-32 checksums (torch.load does not, so flipped bytes in
tensor data would load silently), then reads it with ``torch.load(weights_only=True)`` only, whose
unpickler accepts tensors and plain containers and refuses every other global: loading a file
never runs code from it. Saving
writes a temporary file in the target directory and moves it into place with ``os.replace``: a
failed save leaves any previous checkpoint untouched and no partial file behind. The data is
fsynced before the rename and the directory after it, so a crash or ``kill -9`` at any moment
leaves either the old or the new checkpoint, complete; a process killed mid-write can leave a
stray ``.<name>.*.tmp`` file, which ``remove_stale_temporaries`` deletes.
"""

from __future__ import annotations

import math
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .guide import MeanFieldGuide
from .infer.fit import TrainingState
from .model import BayesianMLP

__all__ = [
    "FORMAT",
    "VERSION",
    "Checkpoint",
    "CheckpointError",
    "check_compatible",
    "check_json_like",
    "describe_spec",
    "load_checkpoint",
    "remove_stale_temporaries",
    "save_checkpoint",
]

FORMAT = "pyro_bbb.checkpoint"
VERSION = 1
_KEYS = {"format", "version", "model_spec", "guide_state", "guide_init", "metadata"}

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read: missing, corrupt, foreign or mismatched."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model, its fitted guide, the saved metadata and, when
    saved, the TrainingState to resume training from (``fit(..., state=training_state)``)."""

    model: BayesianMLP
    guide: MeanFieldGuide
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    training_state: TrainingState | None = None


def check_json_like(value: Any, where: str = "metadata") -> None:
    """Raise CheckpointError unless ``value`` is built from str/int/float/bool/None/list/dict.

    Dict keys must be strings. Such values survive ``torch.load(weights_only=True)`` and JSON.
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_json_like(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{where} has a non-string key {key!r}; keys must be str")
            check_json_like(item, f"{where}[{key!r}]")
        return
    raise CheckpointError(
        f"{where} holds a {type(value).__name__}; metadata may only contain str, int, float, "
        "bool, None, lists and dicts (convert tensors with .tolist())"
    )


def _check_plain(value: Any, where: str) -> None:
    """Raise CheckpointError unless ``value`` loads with ``torch.load(weights_only=True)`` as
    written: tensors, str/int/float/bool/None, lists, tuples, dicts with str or int keys."""
    if value is None or torch.is_tensor(value) or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise CheckpointError(f"{where} has a key {key!r}; keys must be str or int")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise CheckpointError(f"{where} holds a value of type {type(value).__name__}, which a "
                          "weights_only load would refuse (tensors and plain values only)")


def describe_spec(spec: Mapping) -> str:
    """A one-line description of a model spec, e.g. ``1-100-100-1 relu, gaussian likelihood``."""
    sizes = "-".join(str(s) for s in spec.get("layer_sizes", ()))
    likelihood = dict(spec.get("likelihood") or {})
    kind = likelihood.get("kind", "?")
    if kind == "categorical":
        kind = f"categorical({likelihood.get('num_classes')})"
    elif kind == "gaussian":
        kind = "gaussian, learned noise" if likelihood.get("noise") is None else (
            f"gaussian, noise {likelihood['noise']}")
    return f"{sizes} {spec.get('activation', '?')}, {kind} likelihood"


def _expected_state(model: BayesianMLP) -> dict[str, torch.Size]:
    """Names and shapes of the state of a fresh guide for ``model`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        guide = MeanFieldGuide(model)
    return {name: value.shape for name, value in guide.state_dict().items()}


def _check_state(state: Mapping, model: BayesianMLP, where: str) -> None:
    """Raise CheckpointError naming missing/unexpected keys and shape mismatches."""
    expected = _expected_state(model)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    for name, shape in expected.items():
        value = state.get(name)
        if value is None:
            continue
        if not torch.is_tensor(value) or not value.is_floating_point():
            problems.append(f"{name} is not a floating-point tensor")
        elif value.shape != shape:
            problems.append(f"{name} has shape {tuple(value.shape)}, expected {tuple(shape)}")
        elif not torch.isfinite(value).all():
            problems.append(f"{name} holds NaN or inf values")
    if problems:
        raise CheckpointError(
            f"{where}: guide state does not match the model {describe_spec(model.spec())}: "
            + "; ".join(problems)
        )


def save_checkpoint(
    path: PathLike,
    model: BayesianMLP,
    guide: MeanFieldGuide,
    metadata: Mapping[str, Any] | None = None,
    training_state: TrainingState | None = None,
) -> Path:
    """Write ``model``'s spec, ``guide``'s parameters and ``metadata`` to ``path`` atomically.

    With ``training_state`` (from ``fit``'s ``on_checkpoint`` or ``FitResult.state``) the file
    also holds what resuming needs, and the parameters written are the state's (the snapshot the
    optimizer state belongs to). Returns the path written. Raises CheckpointError (and writes
    nothing) when the metadata is not JSON-like, the guide does not belong to the model or holds
    NaN/inf, the model has no spec, the state holds something other than tensors and plain
    values, the directory is missing or unwritable, or ``path`` exists and is not a checkpoint
    (that file is never overwritten).
    """
    path = _as_path(path)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise CheckpointError(f"metadata must be a dict with str keys, got "
                              f"{type(metadata).__name__}")
    metadata = dict(metadata or {})
    check_json_like(metadata)
    if not isinstance(guide, MeanFieldGuide):
        raise CheckpointError(f"guide must be a MeanFieldGuide, got {type(guide).__name__}")
    if training_state is not None and not isinstance(training_state, TrainingState):
        raise CheckpointError(f"training_state must be a TrainingState, got "
                              f"{type(training_state).__name__}")
    try:
        spec = model.spec()
    except (AttributeError, ValueError) as err:
        raise CheckpointError(f"cannot save {model!r}: it has no plain spec ({err})") from err
    source = guide.state_dict() if training_state is None else training_state.guide_state
    state = {k: v.detach().cpu().clone() for k, v in source.items()}
    _check_state(state, model, f"cannot save to {path}")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_spec": spec,
        "guide_state": state,
        "guide_init": {"kind": "mean_field", "init_rho": getattr(guide, "init_rho", None)},
        "metadata": metadata,
    }
    if training_state is not None:
        payload["training_state"] = training_state.to_dict(include_guide=False)
        _check_plain(payload["training_state"], "training_state")
    _check_target(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise CheckpointError(f"cannot save checkpoint to {path}: {err.strerror}") from None
    try:
        crc32 = torch.serialization.get_crc32_options()
        torch.serialization.set_crc32_options(True)  # loading verifies the checksums
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            torch.serialization.set_crc32_options(crc32)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _as_path(path: PathLike) -> Path:
    """``path`` as a Path; CheckpointError for an empty or non-path value."""
    if not isinstance(path, (str, os.PathLike)):
        raise CheckpointError(f"checkpoint path must be a str or os.PathLike, got "
                              f"{type(path).__name__}")
    if not os.fspath(path):
        raise CheckpointError("checkpoint path is empty")
    return Path(path)


def _check_target(path: Path) -> None:
    """Raise CheckpointError unless saving may write ``path``: its directory exists and ``path``
    is absent, empty or a pyro_bbb checkpoint (any other file is the user's and is kept)."""
    if path.is_dir():
        raise CheckpointError(f"cannot save checkpoint: {path} is a directory")
    if not path.parent.is_dir():
        raise CheckpointError(f"cannot save checkpoint to {path}: directory {path.parent} does "
                              "not exist")
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    try:
        _read(path, "cpu")
    except CheckpointError as err:
        raise CheckpointError(f"refusing to overwrite {path}: it exists and is not a readable "
                              f"pyro_bbb checkpoint ({err}); remove it or save elsewhere") from None


def _check_map_location(map_location) -> None:
    """ValueError unless a str/torch.device ``map_location`` names a device usable here."""
    if not isinstance(map_location, (str, torch.device)):
        return  # None, dicts and callables go to torch.load as they are
    try:
        device = torch.device(map_location)
    except (RuntimeError, ValueError):
        raise ValueError(f"map_location {map_location!r} is not a valid device (use e.g. 'cpu' "
                         "or 'cuda:0')") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"map_location {str(map_location)!r} is not available on this machine "
                         "(CUDA is unavailable); use map_location='cpu'")
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"map_location {str(map_location)!r} is not available on this machine: "
                         f"{reason}") from None


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every OS or filesystem can)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(path: PathLike) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files that saves of ``path`` killed mid-write left behind.

    Only call it when no other process is saving to ``path``. Returns the files removed.
    """
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            stale.unlink()
            removed.append(stale)
        except OSError:
            continue
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    text = str(err).strip()
    reason = text.splitlines()[0].split(". ")[0] if text else type(err).__name__
    if "weights_only" in text or "Unsupported global" in text:
        reason = ("it contains objects other than tensors and plain containers, which are "
                  "refused so that loading cannot run code")
    return CheckpointError(f"{path} is not a readable pyro_bbb checkpoint (corrupt, truncated or "
                           f"not a torch zip file): {reason}")


def _read(path: Path, map_location) -> dict:
    """torch.load with weights_only=True; every failure becomes a CheckpointError naming path."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    try:  # torch.load does not check the zip's CRC-32s: corrupted tensor bytes would load
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as err:  # untrusted bytes: any failure means unreadable
        raise _unreadable(path, err) from None
    if bad is not None:
        raise CheckpointError(f"{path} is corrupt: checksum mismatch in its record {bad!r}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # untrusted bytes: pickle, zip and torch errors alike
        raise _unreadable(path, err) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path} is not a pyro_bbb checkpoint (format {found!r}, expected {FORMAT!r}); a "
            "plain torch state_dict cannot be loaded without the model spec"
        )
    version = payload.get("version")
    if version != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {version!r}; this pyro_bbb reads version {VERSION} "
            "only (a newer pyro_bbb may have written it)"
        )
    missing = sorted(_KEYS - set(payload))
    if missing:
        raise CheckpointError(f"{path} is an incomplete checkpoint: missing {missing}")
    for key in ("model_spec", "guide_state", "guide_init", "metadata"):
        if not isinstance(payload[key], dict):
            raise CheckpointError(f"{path}: {key} must be a dict, got "
                                  f"{type(payload[key]).__name__}")
    return payload


def _training_state(path: Path, payload: Mapping) -> TrainingState | None:
    saved = payload.get("training_state")
    if saved is None:
        return None
    try:
        return TrainingState.from_dict(saved, guide_state=payload["guide_state"])
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None


def _guide_for(model: BayesianMLP, state: Mapping, init: Mapping) -> MeanFieldGuide:
    init_rho = init.get("init_rho")
    finite = isinstance(init_rho, (int, float)) and math.isfinite(init_rho)
    rho = float(init_rho) if finite else -5.0
    with torch.random.fork_rng(devices=[]):
        guide = MeanFieldGuide(model, init_rho=rho)
    guide.load_state_dict(dict(state))
    device = next(iter(state.values())).device
    return guide.to(device)


def check_compatible(checkpoint: Checkpoint, model: BayesianMLP) -> None:
    """Raise CheckpointError unless ``checkpoint``'s parameters fit ``model``.

    Layer sizes, activation and likelihood must agree (priors may differ: the guide's parameters
    do not depend on them). The message names both architectures.
    """
    saved, given = checkpoint.model.spec(), model.spec()
    keys = ("layer_sizes", "activation", "likelihood")
    if any(saved[k] != given[k] for k in keys):
        where = f" from {checkpoint.path}" if checkpoint.path else ""
        raise CheckpointError(
            f"the checkpoint{where} holds a {describe_spec(saved)} network, which does not match "
            f"the given model {describe_spec(given)}"
        )
    _check_state(checkpoint.guide.state_dict(), model, "incompatible checkpoint")


def load_checkpoint(
    path: PathLike, map_location: str | torch.device = "cpu", model: BayesianMLP | None = None
) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint`` and rebuild its model and guide (and its
    TrainingState, when it has one).

    With ``model`` given, the parameters are loaded into a guide for that model after
    ``check_compatible`` (and the returned checkpoint holds that model). Every problem with the
    file (NaN/inf parameters included) raises CheckpointError with the path in its message; a
    ``map_location`` that is invalid or not available here raises ValueError before reading.
    """
    path = _as_path(path)
    _check_map_location(map_location)
    payload = _read(path, map_location)
    try:
        saved_model = BayesianMLP.from_spec(payload["model_spec"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid model spec in checkpoint: {err}") from None
    _check_state(payload["guide_state"], saved_model, str(path))
    training_state = _training_state(path, payload)
    guide = _guide_for(saved_model, payload["guide_state"], payload["guide_init"])
    checkpoint = Checkpoint(saved_model, guide, payload["metadata"], path, training_state)
    if model is not None:
        check_compatible(checkpoint, model)
        checkpoint = Checkpoint(model, _guide_for(model, payload["guide_state"],
                                                  payload["guide_init"]), payload["metadata"], path,
                                training_state)
    return checkpoint
