"""Mushroom contextual bandit (Blundell et al. 2015, section 5.3, Figure 6).

    python benchmarks/bandit.py --data ../shared/data/mushroom/agaricus-lepiota.data \\
        --steps 50000 --seeds 0 1 2 --out DIR [--updates-per-step 1] [--update-every 1]
        [--buffer-size 4096] [--noise 0.1] [--agents BBB Greedy ...] [--points 1000]
        [--no-progress]

Runs BBB Thompson sampling, greedy, 1%- and 5%-greedy and the oracle for every seed (within a
seed all agents meet the same mushrooms and coins) and writes to DIR:

* ``bandit_regret.png``: cumulative regret (log axis) against step, the mean over seeds per
  agent (bold) with each seed's curve faint (``--replot bandit.json`` redraws it);
* ``bandit_action_rates.png``: how often each agent eats poisonous and edible mushrooms as the
  run goes on, pooled over seeds in ``--bins`` blocks of steps (``pyro_bbb.bandit_plots.
  action_rate_figure``, notebook 05's figure; the actions are not kept in the JSON, so
  ``--replot`` does not redraw it);
* ``bandit_eat_probability.png``: when BBB ran, P(eat) per mushroom under its posterior at the
  end of the last seed's run (``ThompsonAgent.eat_probability``, 200 draws), edible and
  poisonous apart (notebook 05's last figure);
* ``bandit.json``: the curves at about ``--points`` steps (half log-, half evenly spaced), final
  regrets, wall time per agent, whether BBB's final regret is below every greedy/ε-greedy
  agent's for each seed (the issue's target), settings, hardware and date.

Ctrl-C stops the run and still writes these for the agents that finished every seed (the JSON
says where it stopped; exit status 130). Prints the JSON summary (everything but the curves).
Torch runs single-threaded. Cost on a
shared 2-core CPU at one update per interaction: about 3.5–5 ms per interaction for BBB and
0.5–0.9 ms for each greedy agent, so 50,000 steps × 3 seeds take about 15–20 minutes.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pyro_bbb.argtypes import int_at_least, positive_float, seed
from pyro_bbb.bandit_plots import (
    action_rate_figure,
    eat_probability_figure,
    regret_curve_figure,
    save_figure,
)
from pyro_bbb.bandits import (
    BanditRun,
    ExperimentResult,
    ThompsonAgent,
    default_agents,
    run_bandit,
)
from pyro_bbb.data.mushroom import NUM_MUSHROOM_FEATURES, load_mushroom
from pyro_bbb.experiment import hardware_string, json_safe

LEARNERS = ("Greedy", "1% Greedy", "5% Greedy")
OUTPUTS = ("bandit.json", "bandit_regret.png", "bandit_action_rates.png",
           "bandit_eat_probability.png")


def curve_steps(steps: int, points: int) -> np.ndarray:
    """About ``points`` distinct 1-based step numbers: half log-spaced (the early steps), half
    evenly spaced (the late ones), always including 1 and ``steps``."""
    half = max(points // 2, 2)
    grid = np.concatenate([np.geomspace(1, steps, half), np.linspace(1, steps, half)])
    return np.unique(np.round(grid).astype(int))


def target_met(final: dict[str, list[float]]) -> list[bool] | None:
    """Per seed: is BBB's final regret below every greedy/ε-greedy agent's present?"""
    rivals = [name for name in LEARNERS if name in final]
    if "BBB" not in final or not rivals:
        return None
    return [all(bbb < final[name][i] for name in rivals) for i, bbb in enumerate(final["BBB"])]


def plot(t: np.ndarray, curves: dict[str, np.ndarray], path: Path, title: str) -> None:
    """Cumulative regret at steps ``t`` (``pyro_bbb.bandit_plots.regret_curve_figure``): per agent
    the mean over seeds (bold) and every seed (faint); linear step axis, log regret axis."""
    save_figure(regret_curve_figure(t, curves, title), path, dpi=130)


def play(data, steps: int, seeds, agents, progress: bool = False, final_agents: dict | None = None,
         stopped: dict | None = None) -> tuple[ExperimentResult, dict[str, list[BanditRun]]]:
    """``pyro_bbb.bandits.run_experiment`` (same agents, seeds, streams and order), also returning
    every ``BanditRun`` (its actions feed ``action_rate_figure``); ``final_agents`` (a dict) gets
    each agent as it ends the last seed's run. With ``stopped`` (a dict), Ctrl-C ends the play
    instead of raising: only the agents that finished every seed are returned, and ``stopped``
    gets the agent and seed that were running."""
    seeds = [int(s) for s in seeds]
    result = ExperimentResult(steps, seeds)
    runs: dict[str, list[BanditRun]] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps * len(seeds) * len(agents), unit="step", smoothing=0.05)
    name, seed = next(iter(agents), None), None
    try:
        for name, factory in agents.items():
            runs[name] = []
            for seed in seeds:
                if bar is not None:
                    bar.set_description(f"{name} seed {seed}")
                agent = factory(seed)
                runs[name].append(run_bandit(agent, data, steps, seed,
                                             progress=None if bar is None else bar.update))
                if final_agents is not None:
                    final_agents[name] = agent
            result.cumulative_regret[name] = np.stack([r.cumulative_regret for r in runs[name]])
            result.seconds[name] = [r.seconds for r in runs[name]]
    except KeyboardInterrupt:
        if stopped is None:
            raise
        stopped.update(agent=name, seed=seed)
        runs = {k: v for k, v in runs.items() if k in result.cumulative_regret}
        for k in [k for k in final_agents or {} if k not in runs]:
            del final_agents[k]  # an unfinished agent's is not its final state
    finally:
        if bar is not None:
            bar.close()
    return result, runs


def thompson_defaults() -> dict:
    """ThompsonAgent's likelihood and guide settings (the benchmark uses its defaults)."""
    parameters = inspect.signature(ThompsonAgent).parameters
    return {k: parameters[k].default for k in ("noise", "reward_scale", "init_rho")}


def plot_title(summary: dict) -> str:
    settings = summary["settings"]
    return (f"Mushroom bandit, {summary['steps']:,} steps, seeds {summary['seeds']}, "
            f"{settings['updates_per_step']} update(s) per {settings['update_every']} step(s), "
            f"replay buffer {settings['replay_buffer']:,}")


def build_parser() -> argparse.ArgumentParser:
    positive = int_at_least(1)
    default_noise = thompson_defaults()["noise"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="path of agaricus-lepiota.data (required unless --replot)")
    parser.add_argument("--steps", type=positive, default=50_000,
                        help="interactions per agent and seed (50000)")
    parser.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2],
                        help="seeds, each a stream of mushrooms and coins (0 1 2)")
    parser.add_argument("--out", required=True,
                        help="output folder (created; one holding an earlier run's outputs is "
                        "refused)")
    parser.add_argument("--updates-per-step", type=int_at_least(0), default=1,
                        help="gradient steps after every --update-every interactions (1)")
    parser.add_argument("--update-every", type=positive, default=1,
                        help="interactions between updates (1)")
    parser.add_argument("--buffer-size", type=positive, default=4096,
                        help="replay buffer of every learner (4096; >= --steps keeps the whole "
                        "history)")
    parser.add_argument("--noise", type=positive_float, default=None,
                        help="BBB likelihood std in reward_scale units (ThompsonAgent's default, "
                        f"{default_noise})")
    parser.add_argument("--agents", nargs="+", default=None,
                        help="subset of: BBB, Greedy, '1%% Greedy', '5%% Greedy', Oracle (all)")
    parser.add_argument("--points", type=positive, default=1000,
                        help="curve points kept in the JSON (1000)")
    parser.add_argument("--bins", type=positive, default=40,
                        help="blocks of steps in bandit_action_rates.png (40)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--replot", metavar="JSON",
                        help="only redraw DIR/bandit_regret.png from a bandit.json")
    return parser


def _check_out(parser: argparse.ArgumentParser, out: Path, replot: bool) -> None:
    """``--out`` must be a folder (or not exist yet) that holds no earlier run's outputs; with
    ``--replot`` only the regret figure is written, and replaced."""
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    if not replot:
        earlier = [name for name in OUTPUTS if (out / name).exists()]
        if earlier:
            parser.error(f"--out {out} already holds {', '.join(earlier)} (an earlier run's "
                         "results, never replaced): choose another folder")


def _make_out(parser: argparse.ArgumentParser, out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"--out {out}: cannot create the folder ({err.strerror or err})")


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    _check_out(parser, out, bool(args.replot))
    if args.replot:
        try:
            saved = json.loads(Path(args.replot).read_text())
            curves = saved["curves"]
            steps, regret = np.asarray(curves["steps"]), curves["cumulative_regret"]
            title = plot_title(saved)
        except (OSError, ValueError, KeyError, TypeError) as err:
            detail = f"no {err} entry" if isinstance(err, KeyError) else str(err)
            parser.error(f"--replot {args.replot}: not a readable bandit.json ({detail})")
        _make_out(parser, out)
        plot(steps, regret, out / "bandit_regret.png", title)
        print(f"wrote {out / 'bandit_regret.png'}")
        return saved
    if not args.data:
        parser.error("--data is required (unless --replot)")
    repeated = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
    if repeated:
        parser.error(f"--seeds: {', '.join(map(str, repeated))} given more than once")

    try:
        data = load_mushroom(args.data)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    thompson = {} if args.noise is None else {"noise": args.noise}
    agents = default_agents(data, updates_per_step=args.updates_per_step,
                            update_every=args.update_every, buffer_size=args.buffer_size,
                            **thompson)
    if args.agents:
        unknown = set(args.agents) - set(agents)
        if unknown:
            parser.error(f"unknown agents {sorted(unknown)}; choose from {list(agents)}")
        agents = {name: agents[name] for name in dict.fromkeys(args.agents)}
    _make_out(parser, out)
    torch.set_num_threads(1)
    start = time.perf_counter()
    last_agents: dict = {}
    stopped: dict = {}
    result, runs = play(data, args.steps, args.seeds, agents, progress=not args.no_progress,
                        final_agents=last_agents, stopped=stopped)
    wall = time.perf_counter() - start
    if stopped and not runs:
        raise KeyboardInterrupt  # no agent finished every seed: nothing to write

    final = result.final_regret()
    grid = curve_steps(args.steps, args.points)
    summary = {
        "benchmark": "mushroom contextual bandit (Blundell et al. 2015, section 5.3)",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if argv is None else
        " ".join(["bandit.py", *argv]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "hardware": hardware_string("cpu"),
        "steps": args.steps,
        "seeds": result.seeds,
        "settings": {
            "network": f"{NUM_MUSHROOM_FEATURES}+2 -> 100 -> 100 -> 1, ReLU",
            "replay_buffer": args.buffer_size, "minibatch": 64, "bbb_weight_samples": 2,
            "adam_lr": 1e-3,
            "updates_per_step": args.updates_per_step, "update_every": args.update_every,
            "bbb": {**thompson_defaults(), **thompson,
                    "prior": "scale mixture pi=1/2, sigma1=1, sigma2=e^-6"},
        },
        "final_regret": final,
        "final_regret_mean": {k: float(np.mean(v)) for k, v in final.items()},
        "bbb_below_all_greedy_per_seed": target_met(final),
        "seconds_per_run": {k: [round(s, 1) for s in v] for k, v in result.seconds.items()},
        "ms_per_step": {k: round(1e3 * float(np.mean(v)) / args.steps, 3)
                        for k, v in result.seconds.items()},
        "wall_seconds": round(wall, 1),
    }
    if stopped:
        summary["interrupted"] = (f"Ctrl-C during {stopped['agent']}, seed {stopped['seed']}: "
                                  f"only {', '.join(runs)} finished every seed")
    curves = {
        "steps": grid.tolist(),
        "cumulative_regret": {k: v[:, grid - 1].round(1).tolist()
                              for k, v in result.cumulative_regret.items()},
    }
    (out / "bandit.json").write_text(
        json.dumps(json_safe({**summary, "curves": curves}), indent=1, allow_nan=False) + "\n")
    plot(grid, {k: v[:, grid - 1] for k, v in result.cumulative_regret.items()},
         out / "bandit_regret.png", plot_title(summary))
    save_figure(action_rate_figure(runs, bins=min(args.bins, args.steps),
                                   title=plot_title(summary).replace("Mushroom bandit",
                                                                     "Action rates")),
                out / "bandit_action_rates.png", dpi=130)
    summary["outputs"] = [str(out / "bandit.json"), str(out / "bandit_regret.png"),
                          str(out / "bandit_action_rates.png")]
    if isinstance(last_agents.get("BBB"), ThompsonAgent):
        p_eat = last_agents["BBB"].eat_probability(data.features, 200,
                                             generator=torch.Generator().manual_seed(0))
        save_figure(eat_probability_figure(
            p_eat, data.edible, title=f"BBB after {args.steps:,} steps (seed {args.seeds[-1]}): "
            "P(eat) under its final posterior, 200 draws"), out / "bandit_eat_probability.png",
            dpi=130)
        summary["outputs"].append(str(out / "bandit_eat_probability.png"))
    print(json.dumps(json_safe(summary), indent=2))
    return summary


def cli(argv: list[str] | None = None) -> int:
    """``main`` with Ctrl-C reported in one line (exit status 130)."""
    try:
        summary = main(argv)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was written", file=sys.stderr)
        return 130
    if "interrupted" in summary:
        print(f"interrupted ({summary['interrupted']}): their results are written",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli())
