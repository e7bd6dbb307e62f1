import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_bbb.bandits import (
    EAT,
    PASS,
    GreedyAgent,
    MushroomBandit,
    OracleAgent,
    ReplayBuffer,
    ThompsonAgent,
    default_agents,
    mushroom_reward,
    oracle_reward,
    run_bandit,
    run_experiment,
    sample_reward,
)
from pyro_bbb.data.mushroom import (
    MUSHROOM_ATTRIBUTES,
    NUM_MUSHROOM_FEATURES,
    MushroomData,
    load_mushroom,
)

DATA_DIR = Path(
    os.environ.get("PYRO_BBB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
MUSHROOM_FILE = DATA_DIR / "mushroom" / "agaricus-lepiota.data"

EDIBLE_ROW = "e,x,s,y,t,a,f,c,b,k,e,c,s,s,w,w,p,w,o,p,n,n,g"
POISONOUS_ROW = "p,x,s,n,t,p,f,c,n,k,e,e,s,s,w,w,p,w,o,p,k,s,u"


@pytest.fixture(scope="module")
def mushrooms() -> MushroomData:
    return load_mushroom(MUSHROOM_FILE)  # ../shared/data beside the repo, as in CI


def small_set(data: MushroomData, per_class: int = 20, seed: int = 0) -> MushroomData:
    """``per_class`` edible and ``per_class`` poisonous mushrooms, chosen by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    index = []
    for label in (True, False):
        rows = torch.nonzero(data.edible == label)[:, 0]
        index.append(rows[torch.randperm(len(rows), generator=generator)[:per_class]])
    return data.subset(torch.cat(index))


# --------------------------------------------------------------------------- rewards


def test_reward_table():
    action = torch.tensor([PASS, PASS, PASS, EAT, EAT, EAT, EAT])
    edible = torch.tensor([True, False, False, True, True, False, False])
    lucky = torch.tensor([False, False, True, False, True, True, False])
    expected = torch.tensor([0.0, 0.0, 0.0, 5.0, 5.0, 5.0, -35.0])
    torch.testing.assert_close(mushroom_reward(action, edible, lucky), expected)
    torch.testing.assert_close(oracle_reward(torch.tensor([True, False])), torch.tensor([5.0, 0]))
    with pytest.raises(ValueError, match="pass"):
        mushroom_reward(torch.tensor([2]), torch.tensor([True]), torch.tensor([True]))


def test_poisonous_eat_reward_statistics():
    n = 200_000
    generator = torch.Generator().manual_seed(1)
    rewards = sample_reward(torch.full((n,), EAT), torch.zeros(n, dtype=torch.bool), generator)
    assert set(rewards.unique().tolist()) == {5.0, -35.0}
    # mean −15, std 20: the standard error is 20/√n ≈ 0.045, so ±0.3 is a 6.7σ band
    assert abs(float(rewards.mean()) + 15.0) < 0.3
    assert abs(float((rewards == -35).float().mean()) - 0.5) < 0.01
    assert float(rewards.std()) == pytest.approx(20.0, rel=0.01)
    edible = sample_reward(torch.full((1000,), EAT), torch.ones(1000, dtype=torch.bool), generator)
    passed = sample_reward(torch.full((1000,), PASS), torch.rand(1000) < 0.5, generator)
    assert bool((edible == 5).all()) and bool((passed == 0).all())


def test_environment_regret_and_common_stream(mushrooms):
    eat_env, pass_env = MushroomBandit(mushrooms, seed=3), MushroomBandit(mushrooms, seed=3)
    regrets = []
    for _ in range(300):
        x_eat, x_pass = eat_env.observe(), pass_env.observe()
        assert torch.equal(x_eat, x_pass)  # the stream does not depend on the actions
        edible = eat_env.edible
        eaten, passed = eat_env.step(EAT), pass_env.step(PASS)
        assert passed == (0.0, 5.0 if edible else 0.0, edible)
        assert eaten.regret == (5.0 if edible else 0.0) - eaten.reward
        if not edible:
            regrets.append(eaten.regret)
    assert set(regrets) == {-5.0, 35.0}  # a lucky poisonous eat has regret −5
    with pytest.raises(RuntimeError, match="observe"):
        eat_env.step(EAT)


def test_oracle_has_zero_regret(mushrooms):
    run = run_bandit(OracleAgent(mushrooms), mushrooms, 3000, seed=5)
    assert run.cumulative_regret.shape == (3000,)
    assert not run.cumulative_regret.any()
    assert np.array_equal(run.actions == EAT, run.edible)


# --------------------------------------------------------------------------- data


def test_load_real_file(mushrooms):
    assert mushrooms.features.shape == (8124, NUM_MUSHROOM_FEATURES) == (8124, 126)
    assert mushrooms.features.dtype == torch.float32
    assert len(mushrooms) == 8124 and int(mushrooms.edible.sum()) == 4208
    assert int(mushrooms.poisonous.sum()) == 3916
    assert bool((mushrooms.features.sum(1) == len(MUSHROOM_ATTRIBUTES)).all())
    assert int((mushrooms.features.sum(0) > 0).sum()) == 117  # 9 documented values never occur
    # the first line is "p,x,s,n,t,p,..."
    names = mushrooms.feature_names
    ones = {names[i] for i in torch.nonzero(mushrooms.features[0])[:, 0].tolist()}
    assert {"cap-shape=x", "cap-surface=s", "cap-color=n", "bruises=t", "odor=p"} <= ones
    assert not bool(mushrooms.edible[0])


def test_load_small_file_encoding(tmp_path):
    path = tmp_path / "two.data"
    path.write_text(f"{EDIBLE_ROW}\n\n{POISONOUS_ROW}\n")
    data = load_mushroom(path)
    assert data.edible.tolist() == [True, False]
    names = data.feature_names
    assert names.index("odor=a") in torch.nonzero(data.features[0])[:, 0].tolist()
    assert names.index("odor=p") in torch.nonzero(data.features[1])[:, 0].tolist()
    assert data.subset(torch.tensor([1])).edible.tolist() == [False]


@pytest.mark.parametrize(
    "text, match",
    [
        (f"{EDIBLE_ROW}\n{EDIBLE_ROW},x\n", r"line 2: expected 23 .* got 24"),
        (f"{EDIBLE_ROW}\n{POISONOUS_ROW}\ne,x,s\n", r"line 3: expected 23 .* got 3"),
        (f"{EDIBLE_ROW}\nx{POISONOUS_ROW[1:]}\n", r"line 2: unknown class label 'x'"),
        (f"{EDIBLE_ROW.replace('e,x,s', 'e,q,s', 1)}\n", r"line 1: cap-shape has unknown value"),
        ("\n\n", "no mushrooms"),
    ],
)
def test_load_bad_files(tmp_path, text, match):
    path = tmp_path / "bad.data"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_mushroom(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_mushroom(tmp_path / "nope.data")


# --------------------------------------------------------------------------- agents


def test_replay_buffer_keeps_the_last_items():
    buffer = ReplayBuffer(3, 2)
    for i in range(5):
        buffer.add(torch.tensor([i, -i], dtype=torch.float32), float(i))
    assert len(buffer) == 3
    assert sorted(buffer.y.tolist()) == [2.0, 3.0, 4.0]
    x, y = buffer.sample(50, torch.Generator().manual_seed(0))
    assert x.shape == (50, 2) and set(y.tolist()) <= {2.0, 3.0, 4.0}
    torch.testing.assert_close(x[:, 0], y)


def test_agent_inputs_and_update_schedule(mushrooms):
    agent = GreedyAgent(126, updates_per_step=2, update_every=3, seed=0)
    before = [p.detach().clone() for p in agent.network.parameters()]

    def unchanged() -> bool:
        return all(torch.equal(a, b)
                   for a, b in zip(before, agent.network.parameters(), strict=True))

    agent.update(mushrooms.features[0], EAT, -35.0)
    agent.update(mushrooms.features[1], PASS, 0.0)
    assert unchanged()
    agent.update(mushrooms.features[2], EAT, 5.0)  # third interaction: two Adam steps
    assert not unchanged()
    stored = agent.buffer.x[:3]
    torch.testing.assert_close(stored[:, :126], mushrooms.features[:3])
    torch.testing.assert_close(stored[:, 126:], torch.tensor([[0.0, 1], [1, 0], [0, 1]]))
    assert agent.buffer.y[:3].tolist() == [-35.0, 0.0, 5.0]


def test_greedy_is_deterministic_given_its_network(mushrooms):
    agent = GreedyAgent(126, seed=4)
    for context in mushrooms.features[:50]:
        values = agent.values(context)
        actions = {agent.act(context) for _ in range(5)}
        assert actions == {int(values.argmax())}
    random = GreedyAgent(126, epsilon=1.0, seed=4)
    actions = [random.act(mushrooms.features[0]) for _ in range(2000)]
    assert abs(np.mean(actions) - 0.5) < 0.05


def test_thompson_draws_fresh_weights_per_decision(mushrooms):
    agent = ThompsonAgent(126, init_rho=-1.0, seed=0)
    draws = torch.stack([agent.values(mushrooms.features[0]) for _ in range(20)])
    assert draws.shape == (20, 2) and float(draws.std(0).min()) > 0
    actions = {agent.act(mushrooms.features[0]) for _ in range(50)}
    assert actions == {PASS, EAT}


def test_thompson_explores_then_stops_eating_poisonous(mushrooms):
    """Short seeded run on 40 mushrooms: BBB tries "eat" on poisonous ones early, then mostly
    stops, and its per-step regret falls. (Checked on seeds 0–5 when written: early rates
    0.06–0.16, late/early ratios 0–0.62, regret falling for every seed.)"""
    data = small_set(mushrooms, per_class=20, seed=0)
    steps, window = 800, 200
    run = run_bandit(ThompsonAgent(126, seed=0), data, steps, seed=0)
    early, late = slice(0, window), slice(steps - window, steps)
    assert run.eat_rate(poisonous=True, window=early) > 0.04
    assert run.eat_rate(poisonous=True, window=late) < 0.7 * run.eat_rate(True, early)
    regret = np.diff(run.cumulative_regret, prepend=0.0)
    assert regret[late].mean() < regret[early].mean()


def test_runs_are_reproducible(mushrooms):
    data = small_set(mushrooms, per_class=10, seed=1)
    for make in (lambda s: ThompsonAgent(126, seed=s),
                 lambda s: GreedyAgent(126, epsilon=0.05, seed=s)):
        first = run_bandit(make(7), data, 100, seed=7)
        again = run_bandit(make(7), data, 100, seed=7)
        other = run_bandit(make(8), data, 100, seed=8)
        np.testing.assert_array_equal(first.actions, again.actions)
        np.testing.assert_array_equal(first.cumulative_regret, again.cumulative_regret)
        assert not np.array_equal(first.edible, other.edible)


def test_run_experiment_shapes_and_common_streams(mushrooms):
    data = small_set(mushrooms, per_class=10, seed=2)
    agents = default_agents(data)
    assert list(agents) == ["BBB", "Greedy", "1% Greedy", "5% Greedy", "Oracle"]
    result = run_experiment(data, 60, [0, 1], agents)
    assert result.steps == 60 and result.seeds == [0, 1]
    for name, curves in result.cumulative_regret.items():
        assert curves.shape == (2, 60), name
        assert np.all(np.diff(curves, axis=1) >= -5), name  # a step's regret is ≥ −5
    assert result.final_regret()["Oracle"] == [0.0, 0.0]
    assert set(result.seconds) == set(agents)


@pytest.mark.parametrize("kl_data,expected", [("buffer", [1, 2, 3, 3, 3]),
                                              ("seen", [1, 2, 3, 4, 5])])
def test_kl_scaling_uses_the_buffer_fill_or_everything_seen(mushrooms, kl_data, expected):
    agent = ThompsonAgent(126, buffer_size=3, batch_size=2, kl_data=kl_data, seed=0)
    seen, elbo = [], agent.elbo

    def spy(x, y, num_data=None):
        seen.append(num_data)
        return elbo(x, y, num_data=num_data)

    agent.elbo = spy
    for i in range(5):
        agent.update(mushrooms.features[i], EAT, 5.0)
    assert seen == expected and len(agent.buffer) == 3


def test_kl_data_is_checked():
    with pytest.raises(ValueError, match="kl_data must be 'buffer' or 'seen'"):
        ThompsonAgent(126, kl_data="all")


def test_eat_probability_counts_the_draws_that_eat(mushrooms):
    agent = ThompsonAgent(126, init_rho=-1.0, seed=0)
    contexts = mushrooms.features[:5]
    p = agent.eat_probability(contexts, 40, generator=torch.Generator().manual_seed(3), chunk=7)
    # the same 40 draws, one decision at a time
    draws = agent.guide.sample_posterior(40, generator=torch.Generator().manual_seed(3))
    expected = torch.zeros(5)
    for s in range(40):
        params = {k: v[s:s + 1] for k, v in draws.items()}
        for i in range(5):
            f = agent.model.network(agent._both_actions(contexts[i]), params)[0, :, 0]
            expected[i] += float(f[EAT] > f[PASS])
    assert p.shape == (5,) and bool(((p >= 0) & (p <= 1)).all())
    torch.testing.assert_close(p, expected / 40)
    assert 0 < float(p.mean()) < 1  # a wide posterior (init_rho −1) is undecided
    with pytest.raises(ValueError, match="num_draws must be a positive int"):
        agent.eat_probability(contexts, 0)


# --------------------------------------------------------------------------- bad input

TINY = MushroomData(torch.eye(6), torch.tensor([True, False] * 3))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ThompsonAgent(6, num_particles=0), "num_particles must be a positive int"),
        (lambda: ThompsonAgent(6, num_particles=1.5), "num_particles"),
        (lambda: ThompsonAgent(6, hidden=(10, 0)), "hidden width must be a positive int"),
        (lambda: ThompsonAgent(6, hidden=10), "hidden must be a sequence"),
        (lambda: ThompsonAgent(6, batch_size=0), "batch_size must be a positive int"),
        (lambda: ThompsonAgent(6, buffer_size=0), "buffer_size must be a positive int"),
        (lambda: ThompsonAgent(6, lr=0.0), "lr must be a positive finite number"),
        (lambda: ThompsonAgent(6, lr=float("nan")), "lr"),
        (lambda: ThompsonAgent(6, noise=-1.0), "noise must be a positive"),
        (lambda: ThompsonAgent(6, reward_scale=float("inf")), "reward_scale"),
        (lambda: ThompsonAgent(6, init_rho="x"), "init_rho must be a finite number"),
        (lambda: ThompsonAgent(6, updates_per_step=-1), "updates_per_step must be an int >= 0"),
        (lambda: ThompsonAgent(6, update_every=0), "update_every"),
        (lambda: ThompsonAgent(6, seed=-1), "seed must be an int >= 0"),
        (lambda: ThompsonAgent(0), "num_features must be a positive int"),
        (lambda: GreedyAgent(6, epsilon=float("nan")), "epsilon"),
        (lambda: GreedyAgent(6, hidden=(0,)), "hidden width"),
        (lambda: GreedyAgent(6, lr=-1.0), "lr"),
        (lambda: ReplayBuffer(0, 3), "capacity must be a positive int"),
    ],
)
def test_bad_agent_settings_raise_in_the_constructor(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_numpy_int_settings_are_accepted():
    agent = ThompsonAgent(np.int64(6), num_particles=np.int64(1), batch_size=np.int32(4))
    assert agent.elbo.num_particles == 1 and agent.batch_size == 4


@pytest.mark.parametrize("agent", [ThompsonAgent(5), GreedyAgent(7)], ids=["thompson", "greedy"])
def test_context_of_the_wrong_width_is_named(agent):
    match = r"context has shape \(6,\); this agent was built for num_features="
    with pytest.raises(ValueError, match=match):
        run_bandit(agent, TINY, 3)
    with pytest.raises(ValueError, match=match):
        agent.update(TINY.features[0], EAT, 5.0)
    assert len(agent.buffer) == 0


def test_eat_probability_checks_the_contexts():
    agent = ThompsonAgent(6)
    assert agent.eat_probability(TINY.features, 4).shape == (6,)
    with pytest.raises(ValueError, match=r"contexts has shape \(6, 6\); .*num_features=5"):
        ThompsonAgent(5).eat_probability(TINY.features)
    with pytest.raises(ValueError, match=r"expects \(N, num_features\)"):
        agent.eat_probability(TINY.features[0])
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        agent.eat_probability(TINY.features, chunk=0)


@pytest.mark.parametrize("action, reward, match", [(2, 5.0, "action must be 0"),
                                                   (-1, 5.0, "action must be 0"),
                                                   (EAT, float("nan"), "reward must be finite")])
def test_bad_update_stores_nothing(action, reward, match):
    agent = GreedyAgent(6)
    with pytest.raises(ValueError, match=match):
        agent.update(TINY.features[0], action, reward)
    nan_context = torch.full((6,), float("nan"))
    with pytest.raises(ValueError, match="context contains NaN"):
        agent.update(nan_context, EAT, 5.0)
    assert len(agent.buffer) == 0 and agent._interactions == 0


NAN_FEATURES = torch.eye(6)
NAN_FEATURES[2, 1] = float("nan")


@pytest.mark.parametrize(
    "data, match",
    [
        (MushroomData(torch.zeros(30, 6), torch.zeros(10, dtype=torch.bool)),
         r"data has 30 feature rows but edible has shape \(10,\)"),
        (MushroomData(NAN_FEATURES, TINY.edible), "finite"),
        (MushroomData(torch.zeros(6), TINY.edible), r"shape \(N, num_features\)"),
        (MushroomData(TINY.features, TINY.edible.long() * 2), "booleans"),
        (MushroomData(torch.zeros(0, 6), torch.zeros(0, dtype=torch.bool)), "at least one"),
    ],
)
def test_bad_mushroom_data_is_refused(data, match):
    for use in (MushroomBandit, OracleAgent, default_agents,
                lambda d: run_bandit(GreedyAgent(6), d, 3)):
        with pytest.raises(ValueError, match=match):
            use(data)


def test_mushroom_data_of_other_dtypes_is_converted():
    data = MushroomData(TINY.features.double().numpy(), TINY.edible.long().numpy())
    run = run_bandit(OracleAgent(data), data, 50, seed=1)
    assert not run.cumulative_regret.any() and np.array_equal(run.actions == EAT, run.edible)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(seeds=[]), "seeds is empty"),
        (dict(seeds=[0, -1]), "each seed must be an int >= 0"),
        (dict(seeds=[0.5]), "each seed"),
        (dict(seeds=[0], agents={}), "agents is empty"),
        (dict(seeds=[0], steps=0), "steps must be a positive int"),
    ],
)
def test_run_experiment_checks_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_experiment(TINY, **{"steps": 3, **kwargs})
