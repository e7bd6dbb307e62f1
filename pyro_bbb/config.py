"""Experiment specs: TOML files → validated, frozen dataclasses.

A spec has top-level ``name`` and ``seed`` and the tables ``[data]`` (required), ``[network]``,
``[prior]``, ``[likelihood]``, ``[guide]``, ``[training]`` and ``[evaluation]``; see
``models/toy_regression.toml``. Every key is checked: an unknown key raises ValueError naming the
key, its table and the closest valid key; a wrong type names the expected type; a bad value
(``epochs = 0``, ``lr = -1``, π outside (0, 1), σ ≤ 0, an unknown activation) says what is allowed.

Data paths (``[data] root`` / ``folder``): ``~`` is expanded and absolute paths are kept. A relative
path resolves against the directory named by the environment variable ``PYRO_BBB_DATA`` when it is
set and non-empty (the variable wins), else against the spec file's directory (else the current
directory for ``config_from_dict`` without ``base_dir``). Loaded configs hold absolute paths.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import torch

from .distributions import (
    gaussian_prior,
    prior_from_spec,
    prior_parameters,
    prior_to_spec,
    scale_mixture_prior,
)
from .likelihoods import Bernoulli, Categorical, Gaussian, HeteroscedasticGaussian, Likelihood
from .model import ACTIVATIONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "DATA_ENV",
    "DataConfig",
    "ToyRegressionData",
    "FashionMNISTData",
    "UCIData",
    "NetworkConfig",
    "PriorConfig",
    "LikelihoodConfig",
    "GuideConfig",
    "TrainingConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "config_to_toml",
    "apply_overrides",
    "smoke_config",
    "packaged_spec",
]

#: Environment variable naming the directory that relative data paths resolve against.
DATA_ENV = "PYRO_BBB_DATA"


# --------------------------------------------------------------------------- checking helpers


def _label(section: str, kind: str | None = None) -> str:
    """How messages name a table: "at the top level", "in [training]", "in [data] (kind …)"."""
    if not section:
        return "at the top level"
    return f"in [{section}]" + (f" (kind {kind!r})" if kind else "")


def _fail_unknown(key: str, where: str, valid: Sequence[str]) -> typing.NoReturn:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown key {key!r} {where}{hint} (valid keys: {', '.join(valid)})")


def _check_keys(table: Mapping, where: str, valid: Sequence[str]) -> None:
    for key in table:
        if key not in valid:
            _fail_unknown(str(key), where, valid)


def _choice(value: str, choices: Sequence[str], where: str) -> None:
    if value not in choices:
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{where} must be one of {list(choices)}, got {value!r}{hint}")


def _require(ok: bool, where: str, must: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{where} must {must}, got {value!r}")


def _positive_int(value: int | None, where: str) -> None:
    if value is not None:
        _require(value >= 1, where, "be a positive integer", value)


def _finite(value: float, where: str) -> None:
    _require(math.isfinite(value), where, "be a finite number", value)


_NOUNS = {int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), bool: ("a boolean (true/false)", "booleans")}


def _describe(tp: Any) -> str:
    """Human name of an annotation, for type errors: "an integer", "a list of 2 numbers"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is tuple:
        plural = _NOUNS[args[0]][1]
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {plural}"
        return f"a list of {len(args)} {plural}"
    if tp is PriorConfig:
        return "a table {kind = ..., ...}"
    return _NOUNS[tp][0]


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp`` and convert (ints to float, lists to tuples)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(value, inner[0], where)
        for alternative in inner:  # e.g. bool | str: the first type the value has
            try:
                return _convert(value, alternative, where)
            except ValueError:
                pass
        raise ValueError(f"{where} must be {_describe(tp)}, got {type(value).__name__} "
                         f"{value!r}")
    if tp is PriorConfig:
        return _prior_from_table(value, where)
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
    }
    if tp in ok:
        if not ok[tp](value):
            raise ValueError(f"{where} must be {_describe(tp)}, got {type(value).__name__} "
                             f"{value!r}")
        return float(value) if tp is float else value
    if origin is tuple:
        variadic = len(args) == 2 and args[1] is Ellipsis
        if not isinstance(value, (list, tuple)) or (not variadic and len(value) != len(args)):
            raise ValueError(f"{where} must be {_describe(tp)}, got {value!r}")
        item_types = [args[0]] * len(value) if variadic else list(args)
        return tuple(_convert(v, t, f"{where}[{i}]")
                     for i, (v, t) in enumerate(zip(value, item_types, strict=True)))
    raise TypeError(f"unsupported annotation {tp!r} for {where}")  # pragma: no cover


def _from_table(
    cls: type, table: Any, section: str, base_dir: Path | None, kind: str | None = None
) -> Any:
    """Build dataclass ``cls`` from a TOML table: unknown keys, missing keys and types checked."""
    if not isinstance(table, Mapping):
        raise ValueError(f"[{section}] must be a table, got {type(table).__name__} {table!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls) if f.init]
    where = _label(section, kind)
    _check_keys(table, where, ["kind", *names] if kind else names)
    kwargs = {}
    for f in fields(cls):
        if f.name not in table:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ValueError(f"missing key {f.name!r} {where}")
            continue
        value = _convert(table[f.name], hints[f.name], f"{section}.{f.name}")
        if f.metadata.get("path") and value is not None:
            value = _resolve_path(value, base_dir)
        kwargs[f.name] = value
    return cls(**kwargs)


def _resolve_path(value: str, base_dir: Path | None) -> str:
    """Absolute path: PYRO_BBB_DATA (if set) wins over the spec's directory for relative paths."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    env = os.environ.get(DATA_ENV)
    base = Path(env).expanduser() if env else (base_dir or Path.cwd())
    return str((base / path).absolute())


def _table(obj: Any) -> Any:
    """Plain TOML-ready value of a config object: dicts, lists, scalars; None entries dropped."""
    if isinstance(obj, PriorConfig):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        out = {"kind": obj.kind} if isinstance(obj, DataConfig) else {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            if f.init and value is not None and f.name != "base_dir":
                out[f.name] = _table(value)
        return out
    if isinstance(obj, (tuple, list)):
        return [_table(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- data tables


@dataclass(frozen=True)
class DataConfig:
    """Base of the ``[data]`` tables; ``kind`` selects the subclass."""

    kind: ClassVar[str] = ""
    task: ClassVar[str] = ""  # "regression" or "classification"
    num_classes: ClassVar[int | None] = None

    def smoke(self, limit: int) -> DataConfig:
        """A cheap variant for smoke runs (at most ``limit`` training points where possible)."""
        return self


@dataclass(frozen=True)
class ToyRegressionData(DataConfig):
    """Blundell et al.'s curve: ``num_points`` training x in ``x_range``; test grid on
    ``test_range`` with ``num_test`` points and noise ``test_noise_std`` (0: on the true curve)."""

    kind: ClassVar[str] = "toy_regression"
    task: ClassVar[str] = "regression"
    num_points: int = 100
    noise_std: float = 0.02
    seed: int = 0
    x_range: tuple[float, float] = (0.0, 0.5)
    test_range: tuple[float, float] = (-0.2, 1.2)
    num_test: int = 200
    test_noise_std: float = 0.0

    def __post_init__(self):
        _positive_int(self.num_points, "data.num_points")
        _positive_int(self.num_test, "data.num_test")
        for name in ("noise_std", "test_noise_std"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, f"data.{name}", "be >= 0", value)
        for name in ("x_range", "test_range"):
            low, high = getattr(self, name)
            _require(math.isfinite(low) and math.isfinite(high) and low < high, f"data.{name}",
                     "be [low, high] with low < high", [low, high])

    def smoke(self, limit: int) -> ToyRegressionData:
        return replace(self, num_points=min(self.num_points, limit),
                       num_test=min(self.num_test, limit))


@dataclass(frozen=True)
class FashionMNISTData(DataConfig):
    """Fashion-MNIST IDX files in ``root`` (default: Debian's dataset-fashion-mnist location);
    ``limit_train`` / ``limit_test`` keep only the first images (smoke runs)."""

    kind: ClassVar[str] = "fashion_mnist"
    task: ClassVar[str] = "classification"
    num_classes: ClassVar[int | None] = 10
    root: str | None = field(default=None, metadata={"path": True})
    limit_train: int | None = None
    limit_test: int | None = None

    def __post_init__(self):
        _positive_int(self.limit_train, "data.limit_train")
        _positive_int(self.limit_test, "data.limit_test")

    def smoke(self, limit: int) -> FashionMNISTData:
        return replace(self, limit_train=min(self.limit_train or limit, limit),
                       limit_test=min(self.limit_test or limit, limit))


@dataclass(frozen=True)
class UCIData(DataConfig):
    """A UCI split folder (data.txt + index files) and the split number."""

    kind: ClassVar[str] = "uci"
    task: ClassVar[str] = "regression"
    folder: str = field(metadata={"path": True})
    split: int = 0

    def __post_init__(self):
        _require(bool(self.folder), "data.folder", "name the UCI split folder", self.folder)
        _require(self.split >= 0, "data.split", "be >= 0", self.split)


_DATA_KINDS: dict[str, type[DataConfig]] = {
    cls.kind: cls for cls in (ToyRegressionData, FashionMNISTData, UCIData)
}


def _data_from_table(table: Any, base_dir: Path | None) -> DataConfig:
    if not isinstance(table, Mapping):
        raise ValueError(f"[data] must be a table, got {type(table).__name__} {table!r}")
    if "kind" not in table:
        raise ValueError(f"missing key 'kind' in [data]; one of {list(_DATA_KINDS)}")
    kind = table["kind"]
    _choice(kind, list(_DATA_KINDS), "data.kind")
    rest = {k: v for k, v in table.items() if k != "kind"}
    return _from_table(_DATA_KINDS[kind], rest, "data", base_dir, kind)


# --------------------------------------------------------------------------- model tables


@dataclass(frozen=True)
class NetworkConfig:
    """Hidden layer widths (input and output widths come from the data and likelihood)."""

    hidden_sizes: tuple[int, ...] = (100, 100)
    activation: str = "relu"

    def __post_init__(self):
        for i, size in enumerate(self.hidden_sizes):
            _require(size >= 1, f"network.hidden_sizes[{i}]", "be a positive integer", size)
        _choice(self.activation, list(ACTIVATIONS), "network.activation")

    def layer_sizes(self, input_size: int, output_size: int) -> list[int]:
        return [input_size, *self.hidden_sizes, output_size]


_PRIOR_DEFAULTS = {"scale_mixture": scale_mixture_prior, "gaussian": gaussian_prior}


@dataclass(frozen=True)
class PriorConfig:
    """A prior as ``{kind, params}``, i.e. ``prior_from_spec({"kind": kind, **params})``.

    Kinds: "scale_mixture" (pi, sigma1, sigma2; defaults ½, 1, e⁻⁶), "gaussian" (sigma; default
    1) and "lognormal" (loc, scale). Missing parameters take the defaults where there are some.
    """

    kind: str = "scale_mixture"
    params: dict[str, float] = field(
        default_factory=lambda: {k: v for k, v in prior_to_spec(scale_mixture_prior()).items()
                                 if k != "kind"}
    )

    def __post_init__(self):
        self.build()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params}

    def build(self) -> torch.distributions.Distribution:
        """The prior distribution (ValueError for bad parameters)."""
        return prior_from_spec(self.to_dict())


def _prior_from_table(table: Any, section: str) -> PriorConfig:
    if not isinstance(table, Mapping):
        raise ValueError(f"[{section}] must be a table, got {type(table).__name__} {table!r}")
    kind = table.get("kind", "scale_mixture")
    if not isinstance(kind, str):
        raise ValueError(f"{section}.kind must be a string, got {kind!r}")
    _choice(kind, list(prior_parameters()), f"{section}.kind")
    names = list(prior_parameters()[kind])
    given = {k: v for k, v in table.items() if k != "kind"}
    _check_keys(given, _label(section, kind), ["kind", *names])
    defaults = _PRIOR_DEFAULTS.get(kind)
    params = {k: v for k, v in prior_to_spec(defaults()).items() if k != "kind"} if defaults else {}
    params.update({k: _convert(v, float, f"{section}.{k}") for k, v in given.items()})
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"[{section}] kind {kind!r} needs the keys {missing}")
    for name, value in params.items():
        _finite(value, f"{section}.{name}")
    try:
        return PriorConfig(kind, {n: params[n] for n in names})
    except ValueError as err:
        raise ValueError(f"[{section}] {err}") from None


_LIKELIHOOD_TASKS = {"gaussian": "regression", "heteroscedastic_gaussian": "regression",
                     "categorical": "classification", "bernoulli": "classification"}


@dataclass(frozen=True)
class LikelihoodConfig:
    """Observation model. gaussian: fixed ``noise`` or learned (omit it; optional
    ``noise_prior``); heteroscedastic_gaussian: the network outputs mean and noise scale per
    input; categorical: ``num_classes`` (default: the data's); bernoulli."""

    kind: str = "gaussian"
    noise: float | None = None
    noise_prior: PriorConfig | None = None
    num_classes: int | None = None

    def __post_init__(self):
        _choice(self.kind, list(_LIKELIHOOD_TASKS), "likelihood.kind")
        if self.kind != "gaussian":
            for name in ("noise", "noise_prior"):
                _require(getattr(self, name) is None, f"likelihood.{name}",
                         f"be omitted for a {self.kind} likelihood", getattr(self, name))
        if self.kind != "categorical":
            _require(self.num_classes is None, "likelihood.num_classes",
                     "be omitted unless kind = 'categorical'", self.num_classes)
        if self.noise is not None:
            _require(math.isfinite(self.noise) and self.noise > 0, "likelihood.noise",
                     "be a positive number (omit it to learn the noise)", self.noise)
            _require(self.noise_prior is None, "likelihood.noise_prior",
                     "be omitted when the noise is fixed", self.noise_prior)
        if self.num_classes is not None:
            _require(self.num_classes >= 2, "likelihood.num_classes", "be >= 2", self.num_classes)

    @property
    def task(self) -> str:
        return _LIKELIHOOD_TASKS[self.kind]

    def build(self, num_classes: int | None = None) -> Likelihood:
        """The likelihood object; ``num_classes`` fills in a categorical's class count."""
        if self.kind == "gaussian":
            prior = None if self.noise_prior is None else self.noise_prior.build()
            return Gaussian(self.noise, prior)
        if self.kind == "heteroscedastic_gaussian":
            return HeteroscedasticGaussian()
        if self.kind == "bernoulli":
            return Bernoulli()
        classes = self.num_classes or num_classes
        if classes is None:
            raise ValueError("likelihood.num_classes is needed for this data")
        return Categorical(classes)


@dataclass(frozen=True)
class GuideConfig:
    """Mean-field guide initialisation: σ = softplus(init_rho) for every weight."""

    init_rho: float = -5.0

    def __post_init__(self):
        _finite(self.init_rho, "guide.init_rho")


@dataclass(frozen=True)
class TrainingConfig:
    """Arguments of ``pyro_bbb.fit`` (``lr_schedule``: "constant" or "cosine";
    ``on_divergence``: "stop" or "lower_lr"; ``cuda_graph``: true, false or "auto", see
    ``fit``). ``checkpoint_every``: a run folder's
    ``checkpoint.pt`` is rewritten every that many epochs (unset: at the first epoch end a minute
    or more after the previous one); there is always one at the end."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    num_particles: int = 1
    kl_weighting: str = "uniform"
    device: str = "auto"
    checkpoint_every: int | None = None
    lr_schedule: str = "constant"
    on_divergence: str = "stop"
    cuda_graph: bool | str = "auto"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "num_particles", "checkpoint_every"):
            _positive_int(getattr(self, name), f"training.{name}")
        _require(math.isfinite(self.lr) and self.lr > 0, "training.lr", "be a positive number",
                 self.lr)
        _choice(self.kl_weighting, ["uniform", "blundell"], "training.kl_weighting")
        _choice(self.lr_schedule, ["constant", "cosine"], "training.lr_schedule")
        _choice(self.on_divergence, ["stop", "lower_lr"], "training.on_divergence")
        _require(self.cuda_graph is True or self.cuda_graph is False or self.cuda_graph == "auto",
                 "training.cuda_graph", 'be true, false or "auto"', self.cuda_graph)
        if self.device != "auto":
            try:
                kind = torch.device(self.device).type
            except (RuntimeError, ValueError):
                kind = None
            _require(kind in ("cpu", "cuda"), "training.device",
                     "be 'auto', 'cpu', 'cuda' or 'cuda:N'", self.device)


@dataclass(frozen=True)
class EvaluationConfig:
    """Posterior predictive settings; ``outside_x`` is where a 1-D regression's predictive std is
    compared with its mean std inside the training range (``std_ratio``)."""

    num_samples: int = 100
    level: float = 0.95
    num_bins: int = 15
    chunk_size: int | None = None
    outside_x: float = 1.0

    def __post_init__(self):
        _positive_int(self.num_samples, "evaluation.num_samples")
        _positive_int(self.num_bins, "evaluation.num_bins")
        _positive_int(self.chunk_size, "evaluation.chunk_size")
        _require(0 < self.level < 1, "evaluation.level", "lie in (0, 1)", self.level)
        _finite(self.outside_x, "evaluation.outside_x")


# --------------------------------------------------------------------------- the experiment

_SECTIONS: dict[str, type] = {
    "network": NetworkConfig,
    "likelihood": LikelihoodConfig,
    "guide": GuideConfig,
    "training": TrainingConfig,
    "evaluation": EvaluationConfig,
}
_TOP_KEYS = ["name", "seed", "data", "network", "prior", "likelihood", "guide", "training",
             "evaluation"]


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: data, model (network, prior, likelihood), guide, training, evaluation.

    ``base_dir`` (not compared) is the spec's directory, kept for overrides with relative paths.
    """

    name: str
    data: DataConfig
    likelihood: LikelihoodConfig
    seed: int = 0
    network: NetworkConfig = field(default_factory=NetworkConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    guide: GuideConfig = field(default_factory=GuideConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    base_dir: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        _require(bool(self.name) and all(c.isalnum() or c in "_.-" for c in self.name)
                 and self.name[0].isalnum(), "name",
                 "be letters, digits, '_', '.', '-' (it names run folders)", self.name)
        if self.likelihood.task != self.data.task:
            raise ValueError(
                f"likelihood.kind {self.likelihood.kind!r} is for {self.likelihood.task}, but "
                f"data.kind {self.data.kind!r} is {self.data.task} data"
            )
        classes = self.likelihood.num_classes
        if self.data.num_classes is not None and classes not in (None, self.data.num_classes):
            raise ValueError(f"likelihood.num_classes is {classes} but {self.data.kind} has "
                             f"{self.data.num_classes} classes")
        if self.data.num_classes is not None and self.likelihood.kind == "bernoulli":
            raise ValueError(f"{self.data.kind} has {self.data.num_classes} classes; use "
                             "likelihood.kind = 'categorical'")


def config_from_dict(
    spec: Mapping[str, Any], base_dir: str | os.PathLike | None = None,
    default_name: str | None = None,
) -> ExperimentConfig:
    """Validate a parsed spec (nested dicts as from ``tomllib``) into an ExperimentConfig."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"an experiment spec must be a table, got {type(spec).__name__}")
    _check_keys(spec, _label(""), _TOP_KEYS)
    base = None if base_dir is None else Path(base_dir).absolute()
    name = spec.get("name", default_name)
    if name is None:
        raise ValueError("missing key 'name' at the top level")
    if "data" not in spec:
        raise ValueError(f"missing table [data]; data.kind is one of {list(_DATA_KINDS)}")
    data = _data_from_table(spec["data"], base)
    sections = {key: _from_table(cls, spec[key], key, base)
                for key, cls in _SECTIONS.items() if key in spec}
    if "likelihood" not in sections:
        sections["likelihood"] = LikelihoodConfig(
            "gaussian" if data.task == "regression" else "categorical")
    if "prior" in spec:
        sections["prior"] = _prior_from_table(spec["prior"], "prior")
    return ExperimentConfig(
        name=_convert(name, str, "name"),
        data=data,
        seed=_seed(_convert(spec.get("seed", 0), int, "seed")),
        base_dir=base,
        **sections,
    )


def _seed(seed: int) -> int:
    _require(0 <= seed < 2**32, "seed", "be an integer in [0, 2**32)", seed)
    return seed


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read and validate a TOML spec; ``name`` defaults to the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spec file not found: {path}")
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: invalid TOML: {err}") from None
    try:
        return config_from_dict(spec, base_dir=path.parent, default_name=path.stem)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain nested dict (TOML/JSON-ready; unset optional keys omitted) that
    ``config_from_dict`` turns back into an equal config."""
    out = {"name": config.name, "seed": config.seed}
    for key in _TOP_KEYS[2:]:
        out[key] = _table(getattr(config, key))
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # JSON escapes are valid TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def config_to_toml(config: ExperimentConfig) -> str:
    """The config as a TOML spec that ``load_config`` reads back to an equal config."""
    spec = config_to_dict(config)
    lines = [f"{k} = {_toml_value(v)}" for k, v in spec.items() if not isinstance(v, dict)]
    for key, table in spec.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _parse_value(text: str) -> Any:
    """A TOML value (``2``, ``1e-3``, ``[8, 8]``, ``"x"``, ``true``), else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def apply_overrides(config: ExperimentConfig, overrides: Sequence[str]) -> ExperimentConfig:
    """Apply ``section.key=value`` overrides (CLI ``--set``) and re-validate.

    Values are TOML (``training.lr=3e-4``, ``network.hidden_sizes=[50]``); a value that is not
    valid TOML is taken as a string (``data.root=/data/fmnist``). ``none`` or ``null`` removes the
    key, so it takes its default (``data.limit_train=none``). Changing a ``kind``
    (``prior.kind=gaussian``) first empties that table, and ``kind`` overrides are applied before
    the others, so ``--set prior.sigma=0.5 --set prior.kind=gaussian`` works in either order.
    """
    spec = config_to_dict(config)
    ordered = sorted(overrides, key=lambda item: item.partition("=")[0].strip().split(".")[-1]
                     != "kind")
    for item in ordered:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ValueError(f"override {item!r} must look like section.key=value, e.g. "
                             "training.epochs=2")
        table = spec
        for depth, part in enumerate(parts[:-1]):
            if part not in table and depth == 0:
                _fail_unknown(part, _label(""), _TOP_KEYS)
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ValueError(f"override {item!r}: {'.'.join(parts[: depth + 1])} is not a "
                                 "table")
        value = _parse_value(text)
        if isinstance(value, str) and value.lower() in ("none", "null"):
            table.pop(parts[-1], None)
        elif parts[-1] == "kind" and table.get("kind") != value:
            table.clear()
            table["kind"] = value
        else:
            table[parts[-1]] = value
    return config_from_dict(spec, base_dir=config.base_dir)


def smoke_config(
    config: ExperimentConfig, epochs: int = 1, num_samples: int = 10, limit: int = 512
) -> ExperimentConfig:
    """A tiny variant for smoke tests: at most ``epochs`` epochs, ``num_samples`` predictive
    samples and ``limit`` data points where the data kind allows it."""
    return replace(
        config,
        data=config.data.smoke(limit),
        training=replace(config.training, epochs=min(epochs, config.training.epochs)),
        evaluation=replace(config.evaluation,
                           num_samples=min(num_samples, config.evaluation.num_samples)),
    )


def packaged_spec(name: str = "toy_regression") -> Path:
    """Path of a spec shipped inside the package (``pyro_bbb/specs/<name>.toml``)."""
    path = Path(str(resources.files("pyro_bbb") / "specs" / f"{name}.toml"))
    if not path.is_file():
        raise FileNotFoundError(f"no packaged spec {name!r} at {path}")
    return path
