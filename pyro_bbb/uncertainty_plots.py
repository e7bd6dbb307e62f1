"""Where a fitted network's uncertainty comes from: its split over x (1-D regression), one
predictive band per independently fitted seed, and out-of-distribution images.

The figures of notebooks 01, 02 and 04 as functions, so that ``pyro-bbb figures`` and ``pyro-bbb
diagnose --seeds`` draw them too. Every figure function returns a matplotlib Figure and never
shows it (headless Agg backend when no backend was chosen, as in ``pyro_bbb.plots``); save it with
``pyro_bbb.plots.save_figure``.

- ``uncertainty_over_x``: aleatoric and epistemic predictive std against a 1-D input;
- ``chain_predictions`` / ``seed_bands``: the predictive band of each chain (VI fit) and, given
  ``diagnostics.function_space_summary`` of the same draws, the R-hat of f(x) across them;
- ``shifted_images`` / ``ood_uncertainties`` / ``ood_summary`` / ``ood_figure``: test images,
  rotated, inverted and uniform-noise copies, their entropy split, the AUROC of an uncertainty
  as a detector of the shift, and the figure comparing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

from .likelihoods import RegressionPrediction
from .plots import (
    UNCERTAINTY_COLORS,
    _inputs_1d,
    _np,
    _pyplot,
    _shade_training_range,
    _training_points,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .diagnostics import FunctionSpaceSummary

__all__ = [
    "uncertainty_over_x",
    "chain_predictions",
    "seed_bands",
    "OOD_KINDS",
    "shifted_images",
    "ood_uncertainties",
    "detection_auroc",
    "ood_summary",
    "format_ood_summary",
    "ood_figure",
]


def uncertainty_over_x(
    x_grid,
    prediction: RegressionPrediction,
    *,
    x_train=None,
    total: bool = False,
    log_scale: bool = True,
    title: str | None = None,
) -> Figure:
    """Aleatoric and epistemic predictive std against a 1-D input.

    std(x)² = aleatoric(x)² + epistemic(x)²: aleatoric = √E_w[σ²] is the observation noise,
    epistemic = √Var_w[f(x; w)] the disagreement between weight draws. ``total`` adds std(x);
    ``x_train`` shades the training input range; the y-axis is logarithmic unless ``log_scale`` is
    False.
    """
    if not isinstance(prediction, RegressionPrediction):
        raise ValueError("uncertainty_over_x needs a RegressionPrediction, got "
                         f"{type(prediction).__name__}")
    xg = _inputs_1d(x_grid)
    if x_train is not None:
        x_train = _training_points(x_train)[0]
    curves = {"aleatoric": _np(prediction.aleatoric_std),
              "epistemic": _np(prediction.epistemic_std)}
    if total:
        curves["total"] = _np(prediction.std)
    if any(len(v) != len(xg) for v in curves.values()):
        raise ValueError(f"x_grid has {len(xg)} points but the prediction has "
                         f"{len(curves['aleatoric'])}")
    order = np.argsort(xg)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    for label, values in curves.items():
        ax.plot(xg[order], values[order], label=label, color=UNCERTAINTY_COLORS[label],
                linestyle="--" if label == "total" else "-")
    if x_train is not None:
        _shade_training_range(ax, x_train)
    ax.set_xlabel("x")
    ax.set_ylabel("std")
    if log_scale:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def chain_predictions(model, draws_by_chain: Mapping[str, torch.Tensor], x, *,
                      labels=None, level: float = 0.95) -> dict:
    """The posterior predictive of each chain: draws of shape (C, S, ...) per site (as
    ``diagnostics.fit_chains`` returns them) → {label: prediction of chain c's S draws}.

    ``labels`` names the chains (e.g. ``[f"seed {s}" for s in chains.seeds]``; default
    ``chain 0``, ``chain 1``, …).
    """
    from .predict import posterior_predictive

    chains = _per_chain(model, draws_by_chain)
    count = len(chains)
    labels = [f"chain {c}" for c in range(count)] if labels is None else [str(s) for s in labels]
    if len(labels) != count:
        raise ValueError(f"{len(labels)} labels for {count} chains")
    return {label: posterior_predictive(model, chain, x, level=level)
            for chain, label in zip(chains, labels, strict=True)}


def _per_chain(model, draws) -> list:
    """(C, S, ...) draws per site, or a list of C dicts of (S, ...) draws → C dicts of draws."""
    if isinstance(draws, (list, tuple)) and draws and all(isinstance(d, Mapping) for d in draws):
        for i, chain in enumerate(draws):
            if _sample_dims(model, chain) == 2:
                raise ValueError(f"chain {i} of the list has (chain, draw) dims; each chain of a "
                                 "list needs (S, ...) draws per site")
        return list(draws)
    if not isinstance(draws, Mapping) or not draws:
        raise ValueError("draws_by_chain must be a dict site → draws of shape (C, S, ...) (e.g. "
                         "fit_chains(...).draws) or a list of per-chain dicts of (S, ...) draws; "
                         f"got {type(draws).__name__}")
    if _sample_dims(model, draws) == 1:
        raise ValueError("the draws have one sample dim (S, ...) but no chain dim; give "
                         "(C, S, ...) draws per site or a list of per-chain dicts")
    sizes = {v.shape[0] for v in draws.values()}
    if len(sizes) != 1:
        raise ValueError(f"the sites disagree on the number of chains: {sorted(sizes)}")
    return [{k: v[c] for k, v in draws.items()} for c in range(sizes.pop())]


def seed_bands(
    predictions: Mapping[str, RegressionPrediction],
    x_grid,
    *,
    data: tuple | None = None,
    r_hat: FunctionSpaceSummary | None = None,
    title: str | None = None,
) -> Figure:
    """One predictive band per fit (``chain_predictions``) over a 1-D grid; with ``r_hat``
    (``function_space_summary`` of the same draws at ``x_grid``) a second panel shows the R-hat
    of f(x) across the fits.

    Each band is the predictive mean and central interval of one fit's draws. Bands that do not
    overlap, or R-hat above 1.01, mean the fits landed in different places. ``data`` = (x, y)
    overlays the training points and shades their input range in the R-hat panel.
    """
    if not isinstance(predictions, Mapping) or not predictions:
        raise ValueError("predictions must be a non-empty mapping label → RegressionPrediction")
    xg = _inputs_1d(x_grid)
    if data is not None:
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError("data must be a pair (x, y) of training inputs and targets")
        data = _training_points(*data, name="data x")
    order = np.argsort(xg)
    for label, pred in predictions.items():
        if not isinstance(pred, RegressionPrediction):
            raise ValueError(f"predictions[{label!r}] is not a RegressionPrediction")
        if len(_np(pred.mean)) != len(xg):
            raise ValueError(f"x_grid has {len(xg)} points but predictions[{label!r}] has "
                             f"{len(_np(pred.mean))}")
    if r_hat is not None:
        values = r_hat.table["r_hat"].to_numpy(dtype=float)
        if values.size != len(xg):
            raise ValueError(f"r_hat holds {values.size} values for {len(xg)} grid points")
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if r_hat is not None else 1,
                             figsize=(10 if r_hat is not None else 5.5, 3.2), squeeze=False)
    axes = list(axes.flat)
    for label, pred in predictions.items():
        (line,) = axes[0].plot(xg[order], _np(pred.mean)[order], label=label)
        axes[0].fill_between(xg[order], _np(pred.lower)[order], _np(pred.upper)[order],
                             alpha=0.15, color=line.get_color())
    if data is not None:
        axes[0].scatter(_np(data[0]), _np(data[1]), s=4, color="tab:red", zorder=3,
                        label="training data")
    axes[0].set_xlabel("x")
    axes[0].set_ylabel("y")
    levels = {float(pred.level) for pred in predictions.values()}
    level = f"{levels.pop():.0%} " if len(levels) == 1 else ""
    axes[0].set_title(f"one band per seed: mean and central {level}interval")
    axes[0].legend(fontsize=8)
    if r_hat is not None:
        axes[1].plot(xg[order], values[order])
        if data is not None:
            _shade_training_range(axes[1], data[0])
        axes[1].axhline(1.01, color="tab:red", linestyle="--", linewidth=1, label="1.01")
        axes[1].set_xlabel("x")
        axes[1].set_ylabel("R-hat of f(x)")
        axes[1].set_title("function-space R-hat across seeds")
        axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _sample_dims(model, draws: Mapping) -> int | None:
    """How many leading dims the draws of the model's first site have beyond its shape."""
    for name, shape in model.latent_shapes().items():
        if name in draws:
            return len(draws[name].shape) - len(shape)
    return None


# ------------------------------------------------------------------------ out of distribution

#: The uncertainty kinds ``ood_uncertainties`` keeps (ClassificationPrediction attributes).
OOD_KINDS = ("total_entropy", "aleatoric", "epistemic")


def _square(x: torch.Tensor) -> int:
    side = int(round(x.shape[-1] ** 0.5))
    if x.dim() != 2 or side * side != x.shape[-1]:
        raise ValueError(f"images must be flattened squares, shape (N, H·W); got {tuple(x.shape)}")
    return side


def shifted_images(x, *, seed: int = 1) -> dict[str, torch.Tensor]:
    """Flattened square images in [0, 1], shape (N, H·W), and three shifts of them (CPU):
    rotated by 90°, inverted (1 − pixel), and as many images of uniform noise U(0, 1)
    (seeded). Keys: ``test (clean)``, ``rotated 90°``, ``inverted``, ``uniform noise``."""
    x = torch.as_tensor(x).detach().cpu()
    side = _square(x)
    if not x.is_floating_point():
        raise ValueError("images must be floats scaled to [0, 1]; got "
                         f"{str(x.dtype).removeprefix('torch.')} (divide by 255)")
    if not x.shape[0]:
        raise ValueError("images is empty (0 images)")
    low, high = float(x.min()), float(x.max())
    if not (0 <= low and high <= 1):  # NaN fails too
        raise ValueError(f"images must be floats scaled to [0, 1]; got values in [{low:g}, "
                         f"{high:g}]" + (" (divide by 255)" if high > 1 else ""))
    generator = torch.Generator().manual_seed(seed)
    return {
        "test (clean)": x,
        "rotated 90°": torch.rot90(x.view(-1, side, side), 1, dims=(1, 2)).reshape(x.shape),
        "inverted": 1.0 - x,
        "uniform noise": torch.rand(x.shape, generator=generator, dtype=x.dtype),
    }


def ood_uncertainties(model, guide, inputs: Mapping[str, torch.Tensor], *,
                      num_samples: int = 100, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """The entropy split of the posterior predictive for each set of inputs: {name: {kind:
    values per input}} with kinds total_entropy = aleatoric + epistemic (nats; CPU tensors).

    Every set gets the same ``num_samples`` weight draws (the guide sampled with ``seed``), so
    differences come from the inputs alone.
    """
    from .likelihoods import ClassificationPrediction
    from .predict import predict

    device = next(iter(guide.parameters())).device
    out = {}
    for name, x in inputs.items():
        generator = torch.Generator(device=device).manual_seed(seed)
        pred = predict(model, guide, torch.as_tensor(x).to(device), num_samples=num_samples,
                       generator=generator)
        if not isinstance(pred, ClassificationPrediction):
            raise ValueError(f"out-of-distribution uncertainties need a classifier, got "
                             f"{type(pred).__name__}")
        out[name] = {k: getattr(pred, k).detach().cpu() for k in OOD_KINDS}
    return out


def detection_auroc(scores, reference) -> float:
    """AUROC of ``scores`` as a detector against ``reference``: P(s > r) + ½ P(s = r) over all
    pairs (s, r), the probability that a shifted input scores higher than an unshifted one
    (0.5 is chance, 1 perfect, below 0.5 the shifted inputs score lower)."""
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    r = torch.sort(torch.as_tensor(reference, dtype=torch.float64).reshape(-1)).values
    if not s.numel() or not r.numel():
        raise ValueError("scores and reference must be non-empty")
    below = torch.searchsorted(r, s, right=False).double()  # r < s
    tied = torch.searchsorted(r, s, right=True).double() - below  # r == s
    return float((below + 0.5 * tied).sum() / (s.numel() * r.numel()))


def ood_summary(uncertainties: Mapping[str, Mapping[str, torch.Tensor]], *,
                reference: str | None = None, kind: str = "epistemic") -> list[dict]:
    """One row per input set: the mean of each uncertainty kind and the AUROC of ``kind``
    against the ``reference`` set (default: the first, the clean test images)."""
    if not uncertainties:
        raise ValueError("no input sets")
    if kind not in OOD_KINDS:
        raise ValueError(f"kind must be one of {', '.join(OOD_KINDS)}, got {kind!r}")
    reference = next(iter(uncertainties)) if reference is None else reference
    if reference not in uncertainties:
        raise ValueError(f"reference {reference!r} is not one of {list(uncertainties)}")
    inside = uncertainties[reference][kind]
    return [{"name": name, **{k: float(torch.as_tensor(v).mean()) for k, v in u.items()},
             "auroc": detection_auroc(u[kind], inside)} for name, u in uncertainties.items()]


def format_ood_summary(rows: list[dict], kind: str = "epistemic") -> str:
    """``ood_summary`` rows as a text table: mean total, aleatoric, epistemic; AUROC."""
    lines = [f"{'':>14}  {'total':>7}  {'aleatoric':>9}  {'epistemic':>9}  AUROC ({kind})"]
    lines += [f"{r['name']:>14}  {r['total_entropy']:7.4f}  {r['aleatoric']:9.4f}  "
              f"{r['epistemic']:9.4f}  {r['auroc']:.3f}" for r in rows]
    return "\n".join(lines)


def ood_figure(inputs: Mapping[str, torch.Tensor],
               uncertainties: Mapping[str, Mapping[str, torch.Tensor]], *,
               kind: str = "epistemic", title: str | None = None) -> Figure:
    """The first image of every shifted set (all but the first, the reference) and the densities
    of ``kind`` uncertainty (nats) of every set, on a log scale, over shared bins.

    An uncertainty that detects the shift puts the shifted sets' densities to the right of the
    reference's (``ood_summary`` gives the AUROC).
    """
    if kind not in OOD_KINDS:
        raise ValueError(f"kind must be one of {', '.join(OOD_KINDS)}, got {kind!r}")
    if not inputs or not uncertainties:
        raise ValueError("ood_figure needs at least one input set (the reference) in inputs and "
                         "uncertainties")
    if list(inputs) != list(uncertainties):
        raise ValueError(f"inputs {list(inputs)} and uncertainties {list(uncertainties)} "
                         "name different sets")
    shifted = list(inputs.items())[1:]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(shifted) + 1, figsize=(3.5 * (len(shifted) + 1), 3.2),
                             squeeze=False)
    axes = list(axes.flat)
    for ax, (name, x) in zip(axes[:-1], shifted, strict=True):
        x = torch.as_tensor(x).detach().cpu()
        side = _square(x)
        ax.imshow(x[0].view(side, side).numpy(), cmap="gray")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    top = max(float(torch.as_tensor(u[kind]).max()) for u in uncertainties.values())
    bins = np.linspace(0, top if top > 0 else 1.0, 40)
    hist = axes[-1]
    for name, u in uncertainties.items():
        hist.hist(_np(u[kind]), bins=bins, histtype="step", linewidth=1.5, label=name,
                  density=True)
    hist.set_xlabel(f"{kind} (nats)")
    hist.set_ylabel("density (log)")
    hist.set_yscale("log")
    hist.set_title(f"{kind} uncertainty per set")
    # beside the panel: inside it the legend hides the densities of some set
    hist.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
