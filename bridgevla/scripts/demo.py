"""``make demo`` / ``python -m bridgevla.scripts.demo``: expert demos → heatmap pre-training on synthetic scenes →
train the small policy on a CPU → evaluate it next to the random-keypose baseline and the expert → print the table
and write ``{"task": success_rate, …, "mean": …}``.

A success rate from one training run is not a property of the recipe (measured on this demo: 67 % and 81 % from two
runs of one config), so ``train_seeds`` runs the whole recipe — pre-training and fine-tuning — once per seed and the
table reports the policy as mean ± std over those runs, each scored on the same held-out evaluation episodes. The
baselines do not depend on training and are evaluated once. ``curve_demos`` adds runs trained on the first N demos
per task (success vs demos). Layout of ``out_dir``::

    demos/                       the expert demos (shared by every run)
    seed_<s>/pretrain|train|eval one recipe run per training seed (train/policy is what ``bridgevla eval`` loads)
    seed_<s>/demos_<n>/train|eval the curve's runs on the first n demos per task
    baselines/                   the random and expert agents' episodes
    eval/                        the combined table (results.md/csv/png/json), failure reasons
    curve.md, curve.json         success vs demos per task
    demo_results.json            {"task": mean success over seeds, ..., "mean": ...}
    demo_run.json                minutes per phase of this invocation, steps done / planned and the training minutes
                                 of every training run, per-seed results

Every phase resumes: generation skips finished episodes, training continues from its last checkpoint (and is skipped
when its policy is already saved), evaluation skips episodes already in its JSONL. Re-running after a crash or a
Ctrl-C therefore only does what is left; two invocations with different ``train_seeds`` into one ``out_dir`` (one per
core) share the demos, and a later invocation naming all seeds only aggregates. Settings:
``bridgevla/configs/demo.yaml`` + ``key=value`` overrides.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks.fileio import atomic_write_json, atomic_write_text
from bridgevla.configuration import load_config, to_dict
from bridgevla.training.config import OptimConfig, TrainConfig
from bridgevla.training.job import TrainJobConfig
from pretrain.cotrain import CotrainConfig
from pretrain.job import PretrainJobConfig
from pretrain.scenes import SceneConfig

DEFAULT_CONFIG = Path(__file__).parents[1] / "configs" / "demo.yaml"
POLICY = "policy"


@dataclass
class DemoEvalConfig:
    episodes: int = 25  # per task and evaluation seed
    seeds: list[int] = field(default_factory=lambda: [0])
    workers: int = 2  # one simulator (and one policy copy) per process
    agents: list[str] = field(default_factory=lambda: [POLICY, "random", "expert"])
    seed_offset: int = 1_000_000  # environment seeds of the test episodes; the demos use seeds 0..demos_per_task-1


@dataclass
class DemoPretrainConfig:
    """Heatmap pre-training before fine-tuning (``pretrain.job``); the model is the fine-tuning one, ``job.model``."""

    enabled: bool = True
    scenes: SceneConfig = field(default_factory=SceneConfig)
    optim: OptimConfig = field(default_factory=lambda: PretrainJobConfig().optim)
    train: TrainConfig = field(default_factory=lambda: PretrainJobConfig().train)  # out_dir is set by the demo
    views: Literal["single", "policy"] = "single"
    zoom_fraction: float = 0.5
    eval_scenes: int = 256


@dataclass
class DemoConfig:
    out_dir: str = "runs/demo"
    tasks: list[str] = field(default_factory=list)
    demos_per_task: int = 10
    generate_workers: int = 2
    env: dict[str, Any] = field(default_factory=dict)  # embedded env options, shared by generation and evaluation
    pretrain: DemoPretrainConfig = field(default_factory=DemoPretrainConfig)
    # data.root, train.out_dir and train.seed are set by the demo, and init.checkpoint when pre-training is enabled
    job: TrainJobConfig = field(default_factory=TrainJobConfig)
    # Synthetic grounding scenes in every fine-tuning batch (pretrain/cotrain.py), against forgetting what
    # pre-training taught; the curve's runs co-train too.
    cotrain: CotrainConfig = field(default_factory=CotrainConfig)
    eval: DemoEvalConfig = field(default_factory=DemoEvalConfig)
    # One whole recipe run (pre-training + fine-tuning, seeded) per entry; the policy's row is mean ± std over them.
    train_seeds: list[int] = field(default_factory=lambda: [0])
    # Success vs demos: also train each seed on the first N demos per task, for every N here (< demos_per_task).
    curve_demos: list[int] = field(default_factory=list)
    min_success: float = 0.0  # exit with status 1 when the policy's mean success is below this (CI gate)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("demo.tasks must name at least one task")
        if not 1 <= self.demos_per_task:
            raise ValueError(f"demo.demos_per_task must be >= 1, got {self.demos_per_task}")
        if not 0.0 <= self.min_success <= 1.0:
            raise ValueError(f"demo.min_success must lie in [0, 1], got {self.min_success}")
        seeds = [int(s) for s in self.train_seeds]
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f"demo.train_seeds must be distinct non-negative integers, got {self.train_seeds}")
        self.train_seeds = seeds
        curve = sorted({int(n) for n in self.curve_demos})
        if curve and not 1 <= curve[0] <= curve[-1] < self.demos_per_task:
            raise ValueError(f"demo.curve_demos must lie in [1, demos_per_task={self.demos_per_task}), got "
                             f"{self.curve_demos} (the full demo count is the main run)")
        self.curve_demos = curve
        if self.eval.seed_offset < self.demos_per_task:
            raise ValueError(f"demo.eval.seed_offset ({self.eval.seed_offset}) must be >= demos_per_task: the test "
                             "episodes must not replay the demos' seeds")


def _phase(name: str) -> float:
    print(f"\n=== {name} ===", flush=True)
    return time.perf_counter()


def _phase_steps(summary_path: Path, name: str) -> dict[str, Any]:
    """Steps done vs planned of a training phase (from its summary.json), with a loud warning when a time cap cut it
    short: the demo's result then reflects the machine's speed and load, not the recipe (docs/training.md)."""
    s = json.loads(summary_path.read_text())
    done, planned = int(s["last_step"]), int(s.get("steps_planned", s["last_step"]))
    # The run's own training time, not this invocation's (a re-run that only resumes finished phases takes ~0 min):
    # "minutes" covers the last session of the run, "minutes_steps" the steps it did (all of them unless resumed).
    seconds = s.get("seconds")
    info = {"steps_done": done, "steps_planned": planned, "complete": done >= planned,
            "steps_per_second": s.get("train_steps_per_second"),
            "minutes": None if seconds is None else round(float(seconds) / 60, 2),
            "minutes_steps": s.get("steps_this_session")}
    if done < planned:
        bar = "!" * 100
        print(f"\n{bar}\nWARNING: {name} stopped by its time cap after {done} of {planned} steps "
              f"({done / max(planned, 1):.0%}, {s.get('train_steps_per_second', 0):.2f} steps/s on this machine).\n"
              "The success rates below are NOT those of the recipe: the machine is slower or busier than the one the "
              "demo was tuned on.\nRaise the cap (e.g. job.train.time_limit_minutes=0 = no cap) or run on an idle "
              f"machine.\n{bar}\n", file=sys.stderr, flush=True)
    return info


def _minutes_text(info: dict[str, Any]) -> str:
    if info.get("minutes") is None:
        return ""
    steps = info.get("minutes_steps")
    part = "" if steps in (None, info["steps_done"]) else f" for its last {steps} steps"
    return f" ({info['minutes']:.1f} min{part})"


def _done(out: Path) -> bool:
    return (out / "policy" / "manifest.json").is_file() and (out / "summary.json").is_file()


def _pretrain(cfg: DemoConfig, seed: int, out: Path) -> dict[str, Any]:
    from pretrain.job import run_pretraining

    p = cfg.pretrain
    pcfg = PretrainJobConfig(model=copy.deepcopy(cfg.job.model), scenes=p.scenes, optim=p.optim,
                             train=copy.deepcopy(p.train), views=p.views, zoom_fraction=p.zoom_fraction,
                             eval_scenes=p.eval_scenes)
    pcfg.train.out_dir, pcfg.train.seed = str(out), seed
    if _done(out):
        print(f"already pre-trained: {out / 'policy'} (delete {out} to redo)")
    else:
        res = run_pretraining(pcfg, resume=(out / "checkpoints" / "latest.json").is_file())
        print(f"pre-trained {res.steps} steps in {res.seconds:.0f} s ({res.steps_per_second:.2f} steps/s)")
    info = _phase_steps(out / "summary.json", f"heatmap pre-training (seed {seed})")
    grounding = json.loads((out / "summary.json").read_text()).get("grounding")
    if grounding:
        print(f"grounding on held-out synthetic scenes: {grounding['accuracy']:.1%}")
        info["grounding"] = grounding["accuracy"]
    return info


def _train(cfg: DemoConfig, seed: int, data: Path, out: Path, init: Path | None, demos: int) -> dict[str, Any]:
    from bridgevla.training.job import run_training
    from pretrain.cotrain import SyntheticGrounding

    job = copy.deepcopy(cfg.job)
    job.data.root, job.data.tasks, job.train.out_dir, job.train.seed = str(data), list(cfg.tasks), str(out), seed
    job.data.episodes_per_task = demos
    if init is not None:
        job.init.checkpoint = str(init)
    if _done(out):
        print(f"policy already trained: {out / 'policy'} (delete {out} to retrain)")
    else:
        aux = SyntheticGrounding(cfg.cotrain, seed) if cfg.cotrain.enabled else None
        result = run_training(job, resume=(out / "checkpoints" / "latest.json").is_file(), auxiliary=aux)
        print(f"trained {result.steps} steps in {result.seconds:.0f} s ({result.steps_per_second:.2f} steps/s, "
              f"batch {job.train.batch_size}); final loss {result.final_loss:.3f}")
    return _phase_steps(out / "summary.json", f"fine-tuning (seed {seed}, {demos} demos per task)")


def _evaluate(cfg: DemoConfig, agents: list[str], out: Path, checkpoint: Path | None) -> list[dict[str, Any]]:
    from bridgevla.evaluation.runner import EvalConfig, evaluate

    ecfg = EvalConfig(benchmark="embedded", checkpoint=str(checkpoint) if checkpoint else None, agents=agents,
                      tasks=list(cfg.tasks), episodes=cfg.eval.episodes, seeds=list(cfg.eval.seeds),
                      seed_offset=cfg.eval.seed_offset, workers=cfg.eval.workers, out_dir=str(out),
                      env=dict(cfg.env), bounds=list(cfg.job.model.bounds))
    return evaluate(ecfg)


def _write_layout(cfg: DemoConfig, records: list[dict[str, Any]], out: Path, demos: Path) -> dict[str, Path]:
    """The episodes by layout next to the demos (bridgevla/evaluation/layout.py): one reset and plan per test scene,
    seconds for the demo's 200."""
    from bridgevla.evaluation.envs import make_env
    from bridgevla.evaluation.layout import write_layout

    env = make_env("embedded", dict(cfg.env))
    try:
        return write_layout(records, env, out, demos, plane_y=cfg.job.augment.mirror_plane_y)
    finally:
        env.close()


def _as_training_seed(records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """A policy's episodes relabelled with its training seed: the report's ± is then the spread over training runs
    (each run's rate pooled over its evaluation episodes), which is what a recipe's success rate varies with."""
    return [{**r, "seed": seed, "eval_seed": r["seed"]} for r in records]


def curve_markdown(rates: dict[int, dict[str, list[float]]], tasks: list[str]) -> str:
    """Success vs demos per task: ``rates[n][task]`` is one success rate per training seed; cells mean ± std."""
    counts = sorted(rates)
    lines = ["| task | " + " | ".join(f"{n} demo{'s' * (n > 1)}" for n in counts) + " |",
             "|---|" + "---:|" * len(counts)]
    for t in [*tasks, "mean"]:
        cells = []
        for n in counts:
            v = np.asarray(rates[n][t], dtype=np.float64)
            m, sd = v.mean(), (v.std(ddof=1) if len(v) > 1 else 0.0)  # ddof=1 as the success table's ±
            cells.append(f"{100 * m:.1f} ± {100 * sd:.1f}")
        lines.append(f"| {'**mean**' if t == 'mean' else t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Every phase for every training seed; returns the policy's success JSON, timings and the run record."""
    from benchmarks.generate import GenerateConfig, generate, print_summary
    from bridgevla.evaluation.failures import write_failures
    from bridgevla.evaluation.report import markdown_table, success_json, summarise, write_report
    from bridgevla.scripts.generate import resolve_env_config

    out = Path(cfg.out_dir)
    data = out / "demos"
    timings: dict[str, float] = {}
    runs: dict[str, dict[str, Any]] = {}
    t_all = time.perf_counter()

    t0 = _phase(f"expert demos: {cfg.demos_per_task} per task for {', '.join(cfg.tasks)}")
    gen_cfg = GenerateConfig(tasks=list(cfg.tasks), episodes=cfg.demos_per_task, out=str(data),
                             workers=cfg.generate_workers, env_config=dict(cfg.env))
    print_summary(generate(gen_cfg, resolve_env_config(gen_cfg.env, gen_cfg.env_config)))
    timings["generate_s"] = time.perf_counter() - t0

    policy_records: list[dict[str, Any]] = []
    curve: dict[int, dict[str, list[float]]] = {n: {} for n in [*cfg.curve_demos, cfg.demos_per_task]}
    for seed in cfg.train_seeds:
        root = out / f"seed_{seed}"
        run: dict[str, Any] = {}
        init = None
        if cfg.pretrain.enabled:
            t0 = _phase(f"seed {seed}: heatmap pre-training on synthetic scenes")
            run["pretrain"] = _pretrain(cfg, seed, root / "pretrain")
            init = root / "pretrain" / "policy"
            timings["pretrain_s"] = timings.get("pretrain_s", 0.0) + time.perf_counter() - t0
        for n in [cfg.demos_per_task, *cfg.curve_demos]:
            sub = root if n == cfg.demos_per_task else root / f"demos_{n}"
            t0 = _phase(f"seed {seed}: training on {n} demos per task")
            run["train" if n == cfg.demos_per_task else f"train_demos_{n}"] = _train(cfg, seed, data, sub / "train",
                                                                                     init, n)
            timings["train_s"] = timings.get("train_s", 0.0) + time.perf_counter() - t0
            if POLICY not in cfg.eval.agents:
                continue
            t0 = _phase(f"seed {seed}, {n} demos per task: evaluation, {cfg.eval.episodes} episodes per task")
            records = _as_training_seed(_evaluate(cfg, [POLICY], sub / "eval", sub / "train" / "policy"), seed)
            rates = success_json(summarise(records), POLICY)
            for task, rate in rates.items():
                curve[n].setdefault(task, []).append(rate)
            if n == cfg.demos_per_task:
                policy_records += records
                run["success"] = rates
            timings["eval_s"] = timings.get("eval_s", 0.0) + time.perf_counter() - t0
        runs[str(seed)] = run

    baselines = [a for a in cfg.eval.agents if a != POLICY]
    baseline_records: list[dict[str, Any]] = []
    if baselines:
        t0 = _phase(f"baselines: {', '.join(baselines)}, {cfg.eval.episodes} episodes per task")
        baseline_records = _evaluate(cfg, baselines, out / "baselines", None)
        timings["eval_s"] = timings.get("eval_s", 0.0) + time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all

    records = policy_records + baseline_records
    summary = summarise(records)
    seeds_txt = ", ".join(map(str, cfg.train_seeds))
    paths = write_report(summary, out / "eval", title=f"embedded benchmark: success rate (policy: mean ± std over "
                                                      f"training seeds {seeds_txt})")
    failures = write_failures(records, out / "eval")
    layout = _write_layout(cfg, records, out / "eval", data)
    table = markdown_table(summary)
    result = success_json(summary, POLICY) if POLICY in summary else {}
    json_path = out / "demo_results.json"
    atomic_write_json(json_path, result)
    curve_md = ""
    if cfg.curve_demos and POLICY in cfg.eval.agents:
        curve_md = curve_markdown(curve, list(cfg.tasks))
        atomic_write_text(out / "curve.md", curve_md + "\n")
        atomic_write_json(out / "curve.json", {str(n): v for n, v in curve.items()})
    steps = [v for run in runs.values() for k, v in run.items() if k.startswith(("pretrain", "train"))]
    run_info = {"minutes": {k.removesuffix("_s"): round(v / 60, 2) for k, v in timings.items()}, "runs": runs,
                "train_seeds": cfg.train_seeds, "eval_episodes_per_task": cfg.eval.episodes * len(cfg.eval.seeds),
                "eval_env_seeds_from": cfg.eval.seed_offset, "demo_env_seeds": [0, cfg.demos_per_task - 1],
                "complete": all(s["complete"] for s in steps), "machine": platform.processor()
                or platform.machine(), "cpus": os.cpu_count(), "load_average_1min_at_end": os.getloadavg()[0]}
    atomic_write_json(out / "demo_run.json", run_info)
    print("\n" + table)
    if curve_md:
        print("\nsuccess vs demos per task (policy, mean ± std over training seeds):\n" + curve_md)
    print(failures["md"].read_text())
    print("phases: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()))
    for seed, run in runs.items():
        print(f"seed {seed} steps: " + ", ".join(f"{k} {v['steps_done']}/{v['steps_planned']}" + _minutes_text(v)
                                                 for k, v in run.items() if k.startswith(("pretrain", "train")))
              + ("" if all(v["complete"] for k, v in run.items() if k.startswith(("pretrain", "train")))
                 else "  <- CUT SHORT by a time cap, see the warning above"))
    print(f"policy success JSON: {json_path}; run record (minutes, steps done/planned): {out / 'demo_run.json'}")
    print(f"tables and plot: {paths['md']}, {paths['csv']}, {paths['png']}; failure reasons: {failures['md']}; "
          f"success by layout next to the demos: {layout['md']}")
    return {"success": result, "timings": timings, "run": run_info}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering, before any simulator import
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML (default: bridgevla/configs/demo.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. job.train.steps=100 demos_per_task=5")
    args = p.parse_args(argv)
    try:
        cfg = load_config(DemoConfig, args.config, args.overrides)
    except ValueError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    atomic_write_json(Path(cfg.out_dir) / "demo_config.json", to_dict(cfg))
    res = run_demo(cfg)
    mean = res["success"].get("mean", 0.0)
    if mean < cfg.min_success:
        print(f"mean success {mean:.3f} is below min_success {cfg.min_success}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
