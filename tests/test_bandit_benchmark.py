"""benchmarks/bandit.py on a few steps: JSON, regret and action-rate figures, same runs as
pyro_bbb.bandits.run_experiment."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from pyro_bbb.bandits import default_agents, run_experiment
from pyro_bbb.data.mushroom import load_mushroom

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("PYRO_BBB_DATA", ROOT.parent / "shared" / "data"))
MUSHROOM_FILE = DATA_DIR / "mushroom" / "agaricus-lepiota.data"


@pytest.fixture(scope="module")
def bandit():
    spec = importlib.util.spec_from_file_location("bandit_benchmark",
                                                  ROOT / "benchmarks" / "bandit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_writes_json_and_both_figures(bandit, tmp_path, capsys):
    out = tmp_path / "out"
    summary = bandit.main(["--data", str(MUSHROOM_FILE), "--steps", "100", "--seeds", "0",
                           "--agents", "BBB", "Greedy", "Oracle", "--points", "20",
                           "--out", str(out), "--no-progress"])
    figures = ["bandit_action_rates.png", "bandit_eat_probability.png", "bandit_regret.png"]
    assert sorted(p.name for p in out.iterdir()) == ["bandit.json", *figures]
    for name in figures:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5_000, name
    saved = json.loads((out / "bandit.json").read_text())
    assert set(saved) == set(summary) - {"outputs"} | {"curves"}
    assert set(saved["final_regret"]) == {"BBB", "Greedy", "Oracle"}


def test_play_repeats_run_experiment(bandit):
    data = load_mushroom(MUSHROOM_FILE)
    agents = {k: v for k, v in default_agents(data).items() if k in ("Greedy", "Oracle")}
    expected = run_experiment(data, 60, [0, 1], agents)
    result, runs = bandit.play(data, 60, [0, 1], agents)
    assert result.seeds == expected.seeds
    for name in agents:
        np.testing.assert_array_equal(result.cumulative_regret[name],
                                      expected.cumulative_regret[name])
        assert [len(r.actions) for r in runs[name]] == [60, 60]


def test_buffer_size_and_noise_reach_the_agents_and_the_json(bandit, tmp_path, monkeypatch):
    built = {}
    original = bandit.default_agents

    def spy(data, **kwargs):
        agents = original(data, **kwargs)
        built.update({name: factory(0) for name, factory in agents.items() if name != "Oracle"})
        return agents

    monkeypatch.setattr(bandit, "default_agents", spy)
    summary = bandit.main(["--data", str(MUSHROOM_FILE), "--steps", "40", "--seeds", "0",
                           "--agents", "BBB", "Greedy", "--buffer-size", "30", "--noise", "0.05",
                           "--points", "10", "--out", str(tmp_path / "out"), "--no-progress"])
    assert {name: agent.buffer.capacity for name, agent in built.items()} == {
        "BBB": 30, "Greedy": 30, "1% Greedy": 30, "5% Greedy": 30}
    assert float(built["BBB"].model.likelihood.noise) == pytest.approx(0.05)
    assert summary["settings"]["replay_buffer"] == 30
    assert summary["settings"]["bbb"]["noise"] == 0.05
    with pytest.raises(SystemExit):
        bandit.main(["--data", str(MUSHROOM_FILE), "--out", str(tmp_path / "bad"),
                     "--buffer-size", "0"])
