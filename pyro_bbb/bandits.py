"""The Mushroom contextual bandit (Blundell et al. 2015, section 5.3) and agents that play it.

Each step t a mushroom with one-hot features x_t is drawn uniformly (with replacement) and the
agent chooses an action a_t ∈ {pass, eat}. Rewards:

    pass → 0;   eat an edible mushroom → +5;   eat a poisonous one → +5 or −35, each w.p. ½.

The oracle eats exactly the edible mushrooms, so its reward is o_t = 5·[edible]. Regret is
r_t = o_t − reward_t and the cumulative regret R_T = Σ_{t≤T} r_t. (A lucky eat of a poisonous
mushroom has regret −5; its expected regret is 15. Passing an edible one costs 5.)

Agents have ``act(context) -> action`` and ``update(context, action, reward)``. The learning
agents regress the reward on the input [x, one-hot(a)] with a 2×100 ReLU MLP trained online from
a replay buffer (Adam on minibatches drawn with replacement from the last ``buffer_size``
interactions, ``updates_per_step`` steps after every ``update_every`` interactions):

* ``ThompsonAgent``: Bayes by Backprop. The network is a ``BayesianMLP`` with a Gaussian
  likelihood, the posterior a ``MeanFieldGuide``; each update minimises the minibatch estimate of
  −ELBO (``FastELBO``, ``num_particles`` weight draws) with num_data = the buffer's fill. Each
  decision draws one w ~ q(w) and takes argmax_a f([x, a]; w) (Thompson sampling).
* ``GreedyAgent``: a deterministic MLP of the same shape trained with squared error; it takes
  argmax_a f([x, a]), or with probability ε a uniformly random action (ε-greedy).
* ``OracleAgent``: knows the labels and eats exactly the edible mushrooms: regret 0 every step.

``run_bandit`` plays one agent for a number of steps on a seeded stream of mushrooms and coin
flips: the same seed gives every agent the same mushrooms and the same coins (common random
numbers), so regret curves of one seed are directly comparable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import nn

from .data.mushroom import MushroomData
from .guide import MeanFieldGuide
from .infer.engine import FastELBO
from .infer.optim import default_adam
from .inputs import as_float, as_int
from .likelihoods import Gaussian
from .model import BayesianMLP

__all__ = [
    "PASS",
    "EAT",
    "ACTIONS",
    "EAT_REWARD",
    "POISON_REWARD",
    "mushroom_reward",
    "sample_reward",
    "oracle_reward",
    "MushroomBandit",
    "BanditStep",
    "Agent",
    "ReplayBuffer",
    "ThompsonAgent",
    "GreedyAgent",
    "OracleAgent",
    "BanditRun",
    "run_bandit",
    "ExperimentResult",
    "default_agents",
    "run_experiment",
]

PASS, EAT = 0, 1
ACTIONS = ("pass", "eat")
EAT_REWARD = 5.0
POISON_REWARD = -35.0
NUM_ACTIONS = len(ACTIONS)


# --------------------------------------------------------------------------- checks


def _widths(hidden) -> list[int]:
    """Hidden layer widths as a list of positive ints."""
    if isinstance(hidden, str) or not isinstance(hidden, (Sequence, np.ndarray)):
        raise ValueError(f"hidden must be a sequence of positive ints, got {hidden!r}")
    return [as_int(w, "each hidden width") for w in hidden]


def _checked_data(data: MushroomData) -> MushroomData:
    """``data`` with float32 features (N, D) and bool labels (N,), or ValueError saying what
    is wrong (lengths that differ, NaN features, labels other than 0/1)."""
    features, edible = torch.as_tensor(data.features), torch.as_tensor(data.edible)
    if features.dim() != 2:
        raise ValueError(f"data.features must have shape (N, num_features), got "
                         f"{tuple(features.shape)}")
    if edible.dim() != 1 or len(edible) != len(features):
        raise ValueError(f"data has {len(features)} feature rows but edible has shape "
                         f"{tuple(edible.shape)}; they must match")
    if len(features) == 0:
        raise ValueError("the bandit needs at least one mushroom")
    if features.is_complex() or not torch.isfinite(features).all():
        raise ValueError("data.features must be real and finite (no NaN or inf)")
    if edible.dtype != torch.bool and not bool(((edible == 0) | (edible == 1)).all()):
        raise ValueError("data.edible must hold booleans (or 0/1)")
    return MushroomData(features.to(torch.float32), edible.bool())


# --------------------------------------------------------------------------- rewards


def mushroom_reward(action: torch.Tensor, edible: torch.Tensor, lucky: torch.Tensor
                    ) -> torch.Tensor:
    """Reward of ``action`` (0 pass, 1 eat) given the label and the coin ``lucky`` (elementwise).

    pass → 0; eat ∧ (edible ∨ lucky) → +5; eat ∧ poisonous ∧ ¬lucky → −35. ``lucky`` is the
    fair coin of a poisonous eat and is ignored otherwise.
    """
    action, edible, lucky = (torch.as_tensor(v) for v in (action, edible, lucky))
    if bool(((action != PASS) & (action != EAT)).any()):
        raise ValueError(f"actions must be {PASS} (pass) or {EAT} (eat)")
    eat_value = torch.where(edible.bool() | lucky.bool(), EAT_REWARD, POISON_REWARD)
    return torch.where(action == EAT, eat_value, 0.0).to(torch.get_default_dtype())


def sample_reward(action: torch.Tensor, edible: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``mushroom_reward`` with the coin drawn: E[reward | eat, poisonous] = ½·5 − ½·35 = −15."""
    edible = torch.as_tensor(edible)
    shape = torch.broadcast_shapes(torch.as_tensor(action).shape, edible.shape)
    lucky = torch.rand(shape, generator=generator) < 0.5
    return mushroom_reward(action, edible, lucky)


def oracle_reward(edible: torch.Tensor) -> torch.Tensor:
    """The oracle's reward 5·[edible]: it eats every edible mushroom and passes the rest."""
    return torch.as_tensor(edible).to(torch.get_default_dtype()) * EAT_REWARD


# --------------------------------------------------------------------------- environment


class BanditStep(NamedTuple):
    """Outcome of one decision."""

    reward: float
    regret: float
    edible: bool


class MushroomBandit:
    """The environment: a seeded stream of mushrooms and coins.

    ``observe()`` draws the next mushroom (uniformly, with replacement) and its coin and returns
    its features; ``step(action)`` returns the reward and regret of ``action`` on it. The stream
    depends on the seed only, never on the actions, so agents run with the same seed meet the
    same mushrooms and the same coins.
    """

    def __init__(self, data: MushroomData, seed: int = 0):
        self.data = _checked_data(data)
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(as_int(seed, "seed", minimum=0))
        self._index: int | None = None
        self._lucky = False

    @property
    def num_features(self) -> int:
        return int(self.data.features.shape[1])

    def observe(self) -> torch.Tensor:
        """Draw the next mushroom; returns its features (num_features,)."""
        self._index = int(self._rng.integers(len(self.data)))
        self._lucky = bool(self._rng.random() < 0.5)
        return self.data.features[self._index]

    @property
    def edible(self) -> bool:
        """The label of the current mushroom."""
        if self._index is None:
            raise RuntimeError("call observe() before asking about the current mushroom")
        return bool(self.data.edible[self._index])

    def step(self, action: int) -> BanditStep:
        """Reward and regret of ``action`` on the current mushroom (observe() must come first)."""
        edible = self.edible
        if action == EAT:
            reward = EAT_REWARD if (edible or self._lucky) else POISON_REWARD
        elif action == PASS:
            reward = 0.0
        else:
            raise ValueError(f"action must be {PASS} (pass) or {EAT} (eat), got {action!r}")
        self._index = None
        return BanditStep(reward, (EAT_REWARD if edible else 0.0) - reward, edible)


# --------------------------------------------------------------------------- agents


class Agent(Protocol):
    """What ``run_bandit`` needs from an agent."""

    def act(self, context: torch.Tensor) -> int: ...

    def update(self, context: torch.Tensor, action: int, reward: float) -> None: ...


class ReplayBuffer:
    """The last ``capacity`` (input, reward) pairs, in preallocated tensors (a ring)."""

    def __init__(self, capacity: int, input_size: int):
        self.capacity = capacity = as_int(capacity, "capacity")
        input_size = as_int(input_size, "input_size")
        self.x = torch.zeros(capacity, input_size)
        self.y = torch.zeros(capacity)
        self.size = 0
        self._next = 0

    def __len__(self) -> int:
        return self.size

    def add(self, x: torch.Tensor, y: float) -> None:
        self.x[self._next] = x
        self.y[self._next] = y
        self._next = (self._next + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """A minibatch drawn uniformly with replacement from the filled part."""
        if self.size == 0:
            raise RuntimeError("the replay buffer is empty")
        index = torch.randint(self.size, (batch_size,), generator=generator)
        return self.x[index], self.y[index]


def _action_inputs(num_features: int) -> torch.Tensor:
    """A (2, num_features + 2) buffer: rows [x, one-hot(pass)] and [x, one-hot(eat)]."""
    inputs = torch.zeros(NUM_ACTIONS, num_features + NUM_ACTIONS)
    inputs[:, num_features:] = torch.eye(NUM_ACTIONS)
    return inputs


class _ReplayLearner:
    """Replay buffer and update schedule shared by the learning agents."""

    def __init__(self, num_features: int, buffer_size: int, batch_size: int,
                 updates_per_step: int, update_every: int, seed: int):
        self.num_features = num_features = as_int(num_features, "num_features")
        self.batch_size = as_int(batch_size, "batch_size")
        self.updates_per_step = as_int(updates_per_step, "updates_per_step", minimum=0)
        self.update_every = as_int(update_every, "update_every")
        self.buffer = ReplayBuffer(as_int(buffer_size, "buffer_size"), num_features + NUM_ACTIONS)
        self.generator = torch.Generator().manual_seed(as_int(seed, "seed", minimum=0))
        self._inputs = _action_inputs(num_features)
        self._interactions = 0

    def _check_context(self, context, batch: bool = False) -> torch.Tensor:
        """``context`` as a tensor of shape (num_features,), or (N, num_features) if ``batch``."""
        context = torch.as_tensor(context)
        if context.dim() != 1 + batch or context.shape[-1] != self.num_features:
            name = "contexts" if batch else "context"
            shape = "(N, num_features)" if batch else "(num_features,)"
            raise ValueError(f"{name} has shape {tuple(context.shape)}; this agent was built for "
                             f"num_features={self.num_features} and expects {shape}")
        return context

    def _both_actions(self, context: torch.Tensor) -> torch.Tensor:
        self._inputs[:, : self.num_features] = self._check_context(context)
        return self._inputs

    def update(self, context: torch.Tensor, action: int, reward: float) -> None:
        """Store ([x, one-hot(a)], reward); every ``update_every`` calls take gradient steps."""
        context = self._check_context(context)
        if action not in (PASS, EAT) or isinstance(action, bool):
            raise ValueError(f"action must be {PASS} (pass) or {EAT} (eat), got {action!r}")
        reward = float(reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        if not bool(torch.isfinite(context).all()):
            raise ValueError("context contains NaN or infinite values")
        row = torch.zeros(self.num_features + NUM_ACTIONS)
        row[: self.num_features] = context
        row[self.num_features + int(action)] = 1.0
        self.buffer.add(row, float(reward))
        self._interactions += 1
        if self._interactions % self.update_every == 0:
            for _ in range(self.updates_per_step):
                self.train_step()

    def train_step(self) -> float:
        raise NotImplementedError


class ThompsonAgent(_ReplayLearner):
    """Bayes-by-Backprop Thompson sampling: one posterior draw per decision.

    Args:
        num_features: context width (126 for the one-hot mushrooms); the network sees
            num_features + 2 inputs (context and one-hot action) and outputs the expected reward.
        hidden: hidden layer widths (2×100 ReLU, as the reproductions of the paper).
        prior: weight prior (default: the scale mixture π=½, σ1=1, σ2=e⁻⁶).
        noise: fixed std of the Gaussian likelihood in units of ``reward_scale`` (default 0.1,
            i.e. 1 reward unit), or None to learn it. This is a tempered likelihood (the reward
            of a poisonous eat has std 20): in 5000-step runs a learned noise or a std of 10
            reward units kept exploring far too long (regret 14–18k against 2–3k).
        reward_scale: the network models reward / reward_scale, so that its outputs are O(1)
            like the prior's weights; ``values`` are returned in reward units.
        init_rho: initial ρ of the guide (σ = softplus(ρ) ≈ 0.018 for the default −4).
        buffer_size, batch_size, num_particles, lr: replay buffer 4096, minibatch 64, 2 weight
            draws per step, Adam 1e-3. Over 50,000 steps a buffer that keeps the whole history
            (``buffer_size=50000``) with ``noise=0.02`` had the lowest regret: with 4096 kept,
            the evidence against a mushroom no longer eaten leaves the buffer, the posterior
            widens again and Thompson sampling keeps paying ~0.07 regret per step (README).
        updates_per_step, update_every: gradient steps taken after every ``update_every``
            interactions.
        kl_data: the N of the −ELBO's minibatch scaling: "buffer" (the buffer's fill, at most
            ``buffer_size``: the posterior never gets narrower than a ``buffer_size``-point one)
            or "seen" (every interaction so far: the posterior of all the data, approximated by
            replaying the recent part, keeps narrowing, so exploration fades as data accrues).
        seed: seeds the initial weights, the posterior draws and the minibatches. FastELBO's
            training draws use torch's global RNG, which ``run_bandit`` seeds.
    """

    def __init__(self, num_features: int, hidden: Sequence[int] = (100, 100), *, prior=None,
                 noise: float | None = 0.1, reward_scale: float = 10.0, init_rho: float = -4.0,
                 buffer_size: int = 4096, batch_size: int = 64, num_particles: int = 2,
                 lr: float = 1e-3, updates_per_step: int = 1, update_every: int = 1,
                 kl_data: str = "buffer", seed: int = 0):
        super().__init__(num_features, buffer_size, batch_size, updates_per_step, update_every,
                         seed)
        if kl_data not in ("buffer", "seen"):
            raise ValueError(f"kl_data must be 'buffer' or 'seen', got {kl_data!r}")
        hidden = _widths(hidden)
        noise = None if noise is None else as_float(noise, "noise", positive=True)
        self.reward_scale = as_float(reward_scale, "reward_scale", positive=True)
        init_rho = as_float(init_rho, "init_rho")
        num_particles = as_int(num_particles, "num_particles")
        lr = as_float(lr, "lr", positive=True)
        self.kl_data = kl_data
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = BayesianMLP([self.num_features + NUM_ACTIONS, *hidden, 1],
                                     Gaussian(noise), prior=prior)
            self.guide = MeanFieldGuide(self.model, init_rho=init_rho)
        self.elbo = FastELBO(self.model, self.guide, num_particles=num_particles)
        self.optimizer = default_adam(self.guide.parameters(), lr)

    @torch.no_grad()
    def values(self, context: torch.Tensor) -> torch.Tensor:
        """f([x, a]; w) for a = pass, eat under one fresh draw w ~ q: shape (2,)."""
        params = self.guide.sample_posterior(1, generator=self.generator)
        f = self.model.network(self._both_actions(context), params)[0, :, 0]
        return f * self.reward_scale

    def act(self, context: torch.Tensor) -> int:
        """Thompson sampling: argmax_a f([x, a]; w) for one w ~ q (ties: pass)."""
        return int(self.values(context).argmax())

    @torch.no_grad()
    def eat_probability(self, contexts: torch.Tensor, num_draws: int = 200, *,
                        generator: torch.Generator | None = None, chunk: int = 25
                        ) -> torch.Tensor:
        """P(the policy eats | x) = P_{w~q}(f([x, eat]; w) > f([x, pass]; w)) for each row of
        ``contexts`` (N, num_features), estimated from ``num_draws`` posterior draws evaluated
        ``chunk`` at a time: shape (N,)."""
        num_draws, chunk = as_int(num_draws, "num_draws"), as_int(chunk, "chunk")
        contexts = self._check_context(contexts, batch=True)
        n = contexts.shape[0]
        inputs = {}
        for action, template in zip((PASS, EAT), _action_inputs(self.num_features), strict=True):
            rows = template.repeat(n, 1)
            rows[:, : self.num_features] = contexts
            inputs[action] = rows
        draws = self.guide.sample_posterior(num_draws, generator=generator)
        eats = torch.zeros(n)
        for start in range(0, num_draws, chunk):
            params = {site: value[start:start + chunk] for site, value in draws.items()}
            f = {a: self.model.network(x, params)[..., 0] for a, x in inputs.items()}
            eats += (f[EAT] > f[PASS]).float().sum(0)
        return eats / num_draws

    def train_step(self) -> float:
        """One Adam step on the minibatch −ELBO with num_data = the buffer's fill."""
        x, y = self.buffer.sample(self.batch_size, self.generator)
        num_data = len(self.buffer) if self.kl_data == "buffer" else self._interactions
        loss = self.elbo(x, y / self.reward_scale, num_data=num_data).loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class GreedyAgent(_ReplayLearner):
    """A deterministic MLP of the same shape trained with squared error; ε-greedy when ε > 0.

    With ``epsilon = 0`` the action is a deterministic function of the context and the current
    network: argmax_a f([x, a]) (ties: pass). With ε > 0, each decision is uniformly random
    with probability ε. Other arguments as for ``ThompsonAgent``.
    """

    def __init__(self, num_features: int, hidden: Sequence[int] = (100, 100), *,
                 epsilon: float = 0.0, buffer_size: int = 4096, batch_size: int = 64,
                 lr: float = 1e-3, updates_per_step: int = 1, update_every: int = 1,
                 seed: int = 0):
        if not 0.0 <= as_float(epsilon, "epsilon") <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        super().__init__(num_features, buffer_size, batch_size, updates_per_step, update_every,
                         seed)
        self.epsilon = float(epsilon)
        hidden, lr = _widths(hidden), as_float(lr, "lr", positive=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.network = _mlp([self.num_features + NUM_ACTIONS, *hidden, 1])
        self.optimizer = default_adam(self.network.parameters(), lr)

    @torch.no_grad()
    def values(self, context: torch.Tensor) -> torch.Tensor:
        """f([x, a]) for a = pass, eat: shape (2,)."""
        return self.network(self._both_actions(context))[:, 0]

    def act(self, context: torch.Tensor) -> int:
        if self.epsilon > 0 and float(torch.rand((), generator=self.generator)) < self.epsilon:
            return int(torch.randint(NUM_ACTIONS, (), generator=self.generator))
        return int(self.values(context).argmax())

    def train_step(self) -> float:
        """One Adam step on the minibatch mean squared error."""
        x, y = self.buffer.sample(self.batch_size, self.generator)
        loss = (self.network(x)[:, 0] - y).square().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


class OracleAgent:
    """Eats exactly the edible mushrooms; it looks each context up in the labelled data."""

    def __init__(self, data: MushroomData):
        data = _checked_data(data)
        self._edible: dict[bytes, bool] = {}
        for row, edible in zip(data.features.numpy(), data.edible.tolist(), strict=True):
            key = row.tobytes()
            if self._edible.setdefault(key, edible) != edible:
                raise ValueError("the data hold one feature vector with both labels")

    def act(self, context: torch.Tensor) -> int:
        key = context.detach().to(torch.float32).numpy().tobytes()
        if key not in self._edible:
            raise KeyError("the oracle was given a context that is not in its data")
        return EAT if self._edible[key] else PASS

    def update(self, context: torch.Tensor, action: int, reward: float) -> None:
        """The oracle learns nothing."""


# --------------------------------------------------------------------------- running


class BanditRun(NamedTuple):
    """One agent's run: per-step actions, labels, rewards, and the cumulative regret R_t."""

    cumulative_regret: np.ndarray  # (steps,) float64
    actions: np.ndarray  # (steps,) int8, 0 pass / 1 eat
    edible: np.ndarray  # (steps,) bool
    rewards: np.ndarray  # (steps,) float32
    seconds: float

    def eat_rate(self, poisonous: bool = True, window: slice = slice(None)) -> float:
        """Fraction of "eat" among the (poisonous or edible) mushrooms of ``window``."""
        mask = (~self.edible if poisonous else self.edible)[window]
        actions = self.actions[window][mask]
        return float(actions.mean()) if actions.size else float("nan")


def run_bandit(agent: Agent, data: MushroomData, steps: int, seed: int = 0,
               progress: Callable[[int], object] | None = None) -> BanditRun:
    """Play ``agent`` for ``steps`` decisions on the stream of ``MushroomBandit(data, seed)``.

    Torch's global RNG (used by FastELBO's training draws) is seeded with ``seed`` for the run
    and restored afterwards, so a fresh agent built with the same arguments and the same seed
    repeats the run exactly. ``progress(n)`` is called with the number of steps done since its
    last call, every 100 steps (e.g. ``tqdm.update``).
    """
    steps = as_int(steps, "steps")
    env = MushroomBandit(data, seed)
    actions = np.zeros(steps, dtype=np.int8)
    edible = np.zeros(steps, dtype=bool)
    rewards = np.zeros(steps, dtype=np.float32)
    regrets = np.zeros(steps, dtype=np.float64)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for t in range(steps):
            context = env.observe()
            action = int(agent.act(context))
            outcome = env.step(action)
            agent.update(context, action, outcome.reward)
            actions[t], edible[t] = action, outcome.edible
            rewards[t], regrets[t] = outcome.reward, outcome.regret
            if progress is not None and (t + 1) % 100 == 0:
                progress(100)
    if progress is not None and steps % 100:
        progress(steps % 100)
    return BanditRun(np.cumsum(regrets), actions, edible, rewards, time.perf_counter() - start)


@dataclass
class ExperimentResult:
    """Cumulative regret curves of several agents over several seeds (same streams per seed)."""

    steps: int
    seeds: list[int]
    cumulative_regret: dict[str, np.ndarray] = field(default_factory=dict)  # (seeds, steps)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def final_regret(self) -> dict[str, list[float]]:
        """R_T per agent and seed."""
        return {name: curves[:, -1].tolist() for name, curves in self.cumulative_regret.items()}


def default_agents(data: MushroomData, *, updates_per_step: int = 1, update_every: int = 1,
                   buffer_size: int = 4096, oracle: bool = True, **thompson_kwargs
                   ) -> dict[str, Callable[[int], Agent]]:
    """Factories ``seed -> agent`` for the paper's comparison: BBB Thompson sampling, greedy,
    ε-greedy with ε = 1% and 5%, and (optionally) the oracle. All learners share the replay
    buffer and update settings; ``thompson_kwargs`` go to ``ThompsonAgent`` only."""
    width = int(_checked_data(data).features.shape[1])
    schedule = {"updates_per_step": updates_per_step, "update_every": update_every,
                "buffer_size": buffer_size}
    agents: dict[str, Callable[[int], Agent]] = {
        "BBB": lambda seed: ThompsonAgent(width, seed=seed, **schedule, **thompson_kwargs),
        "Greedy": lambda seed: GreedyAgent(width, seed=seed, **schedule),
        "1% Greedy": lambda seed: GreedyAgent(width, epsilon=0.01, seed=seed, **schedule),
        "5% Greedy": lambda seed: GreedyAgent(width, epsilon=0.05, seed=seed, **schedule),
    }
    if oracle:
        agents["Oracle"] = lambda seed: OracleAgent(data)
    return agents


def run_experiment(data: MushroomData, steps: int, seeds: Sequence[int],
                   agents: Mapping[str, Callable[[int], Agent]] | None = None,
                   progress: bool = False) -> ExperimentResult:
    """Run every agent (``default_agents(data)`` unless given) for every seed.

    For each seed s, each agent is built as ``factory(s)`` and played by ``run_bandit(agent,
    data, steps, s)``: within a seed all agents meet the same mushrooms and coins.
    ``progress=True`` shows a tqdm bar over all agent-steps.
    """
    data, steps = _checked_data(data), as_int(steps, "steps")
    seeds = [as_int(s, "each seed", minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    agents = default_agents(data) if agents is None else agents
    if not agents:
        raise ValueError("agents is empty: give at least one agent factory")
    result = ExperimentResult(steps, seeds)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps * len(seeds) * len(agents), unit="step", smoothing=0.05)
    try:
        for name, factory in agents.items():
            curves, seconds = [], []
            for seed in seeds:
                if bar is not None:
                    bar.set_description(f"{name} seed {seed}")
                run = run_bandit(factory(seed), data, steps, seed,
                                 progress=None if bar is None else bar.update)
                curves.append(run.cumulative_regret)
                seconds.append(run.seconds)
            result.cumulative_regret[name] = np.stack(curves)
            result.seconds[name] = seconds
    finally:
        if bar is not None:
            bar.close()
    return result
