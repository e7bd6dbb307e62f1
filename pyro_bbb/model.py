"""BayesianMLP: a multilayer perceptron whose weights and biases are Pyro sample sites.

Generative model, for layers l = 0..L−1 with sizes d_0 → d_1 → … → d_L:

    W_l ~ prior_l   (shape (d_{l+1}, d_l)),   b_l ~ prior_l   (shape (d_{l+1},))
    h_0 = x,  h_{l+1} = act(h_l W_lᵀ + b_l),  f = h_L (no activation on the last layer)
    y_n ~ likelihood(f(x_n))   inside pyro.plate("data", N)

Minibatches pass ``num_data=N``: the plate scales the likelihood by N/B, so the minibatch loss is
an unbiased estimate of the full-data negative ELBO. Weights may carry any leading sample
dimensions (vectorised particles, posterior draws); outputs then have shape (*sample, B, d_L).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyro
import torch
import torch.nn.functional as F
from pyro.distributions import Independent
from torch.distributions import Distribution

from .distributions import (
    check_prior,
    distribution_to,
    prior_from_spec,
    prior_to_spec,
    scale_mixture_prior,
)
from .inputs import as_int
from .likelihoods import Likelihood, likelihood_from_spec

__all__ = ["BayesianMLP", "ACTIVATIONS", "site_names"]

ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "elu": F.elu,
    "softplus": F.softplus,
}


def site_names(layer: int) -> tuple[str, str]:
    """Names of the weight and bias sites of layer ``layer``."""
    return f"layer{layer}.weight", f"layer{layer}.bias"


def _drop_data_slot(value: torch.Tensor, event_dim: int) -> torch.Tensor:
    """Drop the size-1 dim that outer plates (e.g. vectorised particles) leave for the data plate.

    Under ``pyro.plate("particles", K, dim=-2)`` a global site has batch shape (K, 1): dim −1 is
    the data plate's slot. Weights of shape (K, out, in) then give outputs (K, B, out), whose batch
    dims (K, B) line up with the plates. Keeping the slot would give (K, 1, B, out), which the
    plates broadcast to (K, K, B) and silently multiply the loss by K.
    """
    if value.dim() == event_dim:
        return value
    if value.shape[-event_dim - 1] != 1:
        raise ValueError(
            f"a global site has batch shape {tuple(value.shape[:value.dim() - event_dim])}; "
            "its last batch dim must be 1 (the data plate's slot, dim -1)"
        )
    return value.squeeze(-event_dim - 1)


class BayesianMLP:
    """The Pyro model of a Bayesian MLP (call it like a function: ``model(x, y, num_data)``).

    Args:
        layer_sizes: (d_0, …, d_L), input width first; (d_0, d_L) alone is Bayesian
            linear/logistic regression.
        likelihood: the observation model; its ``output_size`` must equal d_L.
        prior: one univariate prior for every weight and bias, or a sequence with one per layer.
            Default: the scale mixture π=½, σ1=1, σ2=e⁻⁶.
        activation: one of ``ACTIVATIONS``.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        likelihood: Likelihood,
        prior=None,
        activation: str = "relu",
    ):
        sizes = list(layer_sizes)
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least two sizes (input, output), got {sizes}")
        sizes = [as_int(s, f"layer_sizes[{i}]") for i, s in enumerate(sizes)]
        if not isinstance(likelihood, Likelihood):
            raise TypeError(f"likelihood must be a pyro_bbb Likelihood, got {likelihood!r}")
        if sizes[-1] != likelihood.output_size:
            raise ValueError(
                f"the last layer has {sizes[-1]} outputs but the {type(likelihood).__name__} "
                f"likelihood needs {likelihood.output_size}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {list(ACTIVATIONS)}")
        num_layers = len(sizes) - 1
        priors = scale_mixture_prior() if prior is None else prior
        if isinstance(priors, torch.distributions.Distribution):
            priors = [priors] * num_layers
        if not isinstance(priors, (list, tuple)):
            raise TypeError(
                f"prior must be a torch/Pyro Distribution or a list of them, got {priors!r}"
            )
        if len(priors) != num_layers:
            raise ValueError(f"got {len(priors)} priors for {num_layers} layers")
        self.layer_sizes = sizes
        self.likelihood = likelihood
        self.activation = activation
        self.priors = [check_prior(p, f"prior of layer {i}") for i, p in enumerate(priors)]
        self._device_priors: dict[torch.device, dict[str, Distribution]] = {}
        self._site_priors: dict[torch.device, dict[str, Distribution]] = {}

    @property
    def num_layers(self) -> int:
        return len(self.layer_sizes) - 1

    @property
    def input_size(self) -> int:
        return self.layer_sizes[0]

    def _sites(self):
        """(name, shape, layer) of every weight and bias site, in model order."""
        sizes = self.layer_sizes
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            weight, bias = site_names(i)
            yield weight, (d_out, d_in), i
            yield bias, (d_out,), i

    def site_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every weight and bias site, in model order."""
        return {name: shape for name, shape, _ in self._sites()}

    def latent_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every latent site: the weights and biases, then the likelihood's own."""
        shapes = self.site_shapes()
        for name, prior in self.likelihood.latent_priors().items():
            shapes[name] = tuple(prior.batch_shape + prior.event_shape)
        return shapes

    def check_sites(self, shapes: Mapping[str, Sequence[int]], what: str) -> None:
        """ValueError unless ``shapes`` (site name → shape, e.g. a guide's sites) has exactly
        this model's latent sites with their shapes; ``what`` names the source in the message."""
        expected = self.latent_shapes()
        missing = [k for k in expected if k not in shapes]
        unexpected = [k for k in shapes if k not in expected]
        problems = [f"missing sites {missing}"] if missing else []
        problems += [f"unexpected sites {unexpected}"] if unexpected else []
        problems += [f"{k} has shape {tuple(shapes[k])}, the model's is {shape}"
                     for k, shape in expected.items() if k in shapes and tuple(shapes[k]) != shape]
        if problems:
            raise ValueError(f"{what} does not match the model {self!r}: " + "; ".join(problems))

    def univariate_priors(self, device: torch.device) -> dict[str, Distribution]:
        """Each site's univariate prior on ``device``, unexpanded (cached; validation off)."""
        if device not in self._device_priors:
            # validation off: the support is the reals, and checks would sync a GPU every step
            on_device = [distribution_to(p, device, validate_args=False) for p in self.priors]
            self._device_priors[device] = {name: on_device[layer]
                                           for name, _, layer in self._sites()}
        return self._device_priors[device]

    def site_priors(self, device: torch.device) -> dict[str, Distribution]:
        """Each site's prior expanded to the site's shape, as the Pyro model samples it."""
        if device not in self._site_priors:
            priors = self.univariate_priors(device)
            self._site_priors[device] = {
                name: Independent(priors[name].expand(shape), len(shape), validate_args=False)
                for name, shape in self.site_shapes().items()
            }
        return self._site_priors[device]

    def network(self, x: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """f(x; w): x of shape (B, d_0), params with optional leading sample dims → (*, B, d_L)."""
        act = ACTIVATIONS[self.activation]
        h = x
        for i in range(self.num_layers):
            weight, bias = site_names(i)
            w, b = params[weight], params[bias]
            if w.dim() == 2 and b.dim() == 1:  # one draw: the deterministic layer's kernel
                h = F.linear(h, w, b)
            else:
                h = torch.matmul(h, w.transpose(-1, -2)) + b.unsqueeze(-2)
            if i < self.num_layers - 1:
                h = act(h)
        return h

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor | None = None, num_data: int | None = None
    ) -> torch.Tensor:
        """The Pyro model: sample weights, observe y inside the data plate scaled by N/B."""
        params = {
            name: _drop_data_slot(pyro.sample(name, prior), prior.event_dim)
            for name, prior in self.site_priors(x.device).items()
        }
        latents = self.likelihood.sample_latents(x.device)
        params.update({name: _drop_data_slot(v, 0) for name, v in latents.items()})
        f = self.network(x, params)
        batch = x.shape[0]
        size = batch if num_data is None else num_data
        subsample = None if size == batch else torch.arange(batch, device=x.device)
        with pyro.plate("data", size, subsample=subsample):
            self.likelihood.observe(f, y, params)
        return f

    def example_args(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One observed row (x, y), enough to trace the model's latent sites."""
        return torch.zeros(1, self.input_size), self.likelihood.check_targets(torch.zeros(1))

    def spec(self) -> dict:
        """A plain description from which ``from_spec`` rebuilds the same model."""
        return {
            "layer_sizes": list(self.layer_sizes),
            "activation": self.activation,
            "likelihood": self.likelihood.spec(),
            "priors": [prior_to_spec(p) for p in self.priors],
        }

    @classmethod
    def from_spec(cls, spec: Mapping) -> BayesianMLP:
        expected = {"layer_sizes", "activation", "likelihood", "priors"}
        if set(spec) != expected:
            raise ValueError(f"model spec needs exactly the keys {sorted(expected)}, got "
                             f"{sorted(spec)}")
        return cls(
            [int(s) for s in spec["layer_sizes"]],
            likelihood_from_spec(dict(spec["likelihood"])),
            [prior_from_spec(dict(p)) for p in spec["priors"]],
            spec["activation"],
        )

    def __repr__(self) -> str:
        sizes = "-".join(map(str, self.layer_sizes))
        return f"BayesianMLP({sizes}, {self.activation}, {type(self.likelihood).__name__})"
