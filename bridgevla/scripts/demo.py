"""``make demo`` / ``python -m bridgevla.scripts.demo``: expert demos → heatmap pre-training on synthetic scenes →
train the small policy on a CPU → evaluate it next to the random-keypose baseline and the expert → print the table
and write ``{"task": success_rate, …, "mean": …}``.

Every phase resumes: generation skips finished episodes, training continues from its last checkpoint (and is skipped
when its policy is already saved), evaluation skips episodes already in its JSONL. Re-running after a crash or a
Ctrl-C therefore only does what is left. Settings: ``bridgevla/configs/demo.yaml`` + ``key=value`` overrides.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bridgevla.configuration import load_config, to_dict
from bridgevla.training.config import OptimConfig, TrainConfig
from bridgevla.training.job import TrainJobConfig
from pretrain.job import PretrainJobConfig
from pretrain.scenes import SceneConfig

DEFAULT_CONFIG = Path(__file__).parents[1] / "configs" / "demo.yaml"


@dataclass
class DemoEvalConfig:
    episodes: int = 25  # per task and seed
    seeds: list[int] = field(default_factory=lambda: [0])
    workers: int = 2  # one simulator (and one policy copy) per process
    agents: list[str] = field(default_factory=lambda: ["policy", "random", "expert"])


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
    # data.root and train.out_dir are set by the demo, and init.checkpoint when pre-training is enabled
    job: TrainJobConfig = field(default_factory=TrainJobConfig)
    eval: DemoEvalConfig = field(default_factory=DemoEvalConfig)
    min_success: float = 0.0  # exit with status 1 when the policy's mean success is below this (CI gate)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("demo.tasks must name at least one task")
        if not 1 <= self.demos_per_task:
            raise ValueError(f"demo.demos_per_task must be >= 1, got {self.demos_per_task}")
        if not 0.0 <= self.min_success <= 1.0:
            raise ValueError(f"demo.min_success must lie in [0, 1], got {self.min_success}")


def _phase(name: str) -> float:
    print(f"\n=== {name} ===", flush=True)
    return time.perf_counter()


def _phase_steps(summary_path: Path, name: str) -> dict[str, Any]:
    """Steps done vs planned of a training phase (from its summary.json), with a loud warning when a time cap cut it
    short: the demo's result then reflects the machine's speed and load, not the recipe (docs/training.md)."""
    s = json.loads(summary_path.read_text())
    done, planned = int(s["last_step"]), int(s.get("steps_planned", s["last_step"]))
    info = {"steps_done": done, "steps_planned": planned, "complete": done >= planned,
            "steps_per_second": s.get("train_steps_per_second")}
    if done < planned:
        bar = "!" * 100
        print(f"\n{bar}\nWARNING: {name} stopped by its time cap after {done} of {planned} steps "
              f"({done / max(planned, 1):.0%}, {s.get('train_steps_per_second', 0):.2f} steps/s on this machine).\n"
              "The success rates below are NOT those of the recipe: the machine is slower or busier than the one the "
              "demo was tuned on.\nRaise the cap (e.g. job.train.time_limit_minutes=0 = no cap) or run on an idle "
              f"machine.\n{bar}\n", file=sys.stderr, flush=True)
    return info


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """All three phases; returns the policy's success JSON plus timings."""
    from benchmarks.generate import GenerateConfig, generate, print_summary
    from bridgevla.evaluation.failures import write_failures
    from bridgevla.evaluation.report import markdown_table, success_json, summarise, write_report
    from bridgevla.evaluation.runner import EvalConfig, evaluate
    from bridgevla.scripts.generate import resolve_env_config
    from bridgevla.training.job import run_training
    from pretrain.job import run_pretraining

    out = Path(cfg.out_dir)
    data, pre_dir, train_dir, eval_dir = out / "demos", out / "pretrain", out / "train", out / "eval"
    timings: dict[str, float] = {}
    steps: dict[str, dict[str, Any]] = {}
    t_all = time.perf_counter()

    n = 4 if cfg.pretrain.enabled else 3
    t0 = _phase(f"1/{n} expert demos: {cfg.demos_per_task} per task for {', '.join(cfg.tasks)}")
    gen_cfg = GenerateConfig(tasks=list(cfg.tasks), episodes=cfg.demos_per_task, out=str(data),
                             workers=cfg.generate_workers, env_config=dict(cfg.env))
    gen = generate(gen_cfg, resolve_env_config(gen_cfg.env, gen_cfg.env_config))
    print_summary(gen)
    timings["generate_s"] = time.perf_counter() - t0

    job = cfg.job
    if cfg.pretrain.enabled:
        t0 = _phase("2/4 heatmap pre-training on synthetic scenes")
        p = cfg.pretrain
        pcfg = PretrainJobConfig(model=job.model, scenes=p.scenes, optim=p.optim, train=p.train, views=p.views,
                                 zoom_fraction=p.zoom_fraction, eval_scenes=p.eval_scenes)
        pcfg.train.out_dir = str(pre_dir)
        if (pre_dir / "policy" / "manifest.json").is_file() and (pre_dir / "summary.json").is_file():
            print(f"already pre-trained: {pre_dir / 'policy'} (delete {pre_dir} to redo)")
        else:
            res = run_pretraining(pcfg, resume=(pre_dir / "checkpoints" / "latest.json").is_file())
            print(f"pre-trained {res.steps} steps in {res.seconds:.0f} s ({res.steps_per_second:.2f} steps/s)")
        steps["pretrain"] = _phase_steps(pre_dir / "summary.json", "heatmap pre-training")
        grounding = json.loads((pre_dir / "summary.json").read_text()).get("grounding")
        if grounding:
            print(f"grounding on held-out synthetic scenes: {grounding['accuracy']:.1%}")
        job.init.checkpoint = str(pre_dir / "policy")
        timings["pretrain_s"] = time.perf_counter() - t0

    t0 = _phase(f"{n - 1}/{n} training")
    job.data.root, job.data.tasks, job.train.out_dir = str(data), list(cfg.tasks), str(train_dir)
    if (train_dir / "policy" / "manifest.json").is_file() and (train_dir / "summary.json").is_file():
        print(f"policy already trained: {train_dir / 'policy'} (delete {train_dir} to retrain)")
    else:
        resume = (train_dir / "checkpoints" / "latest.json").is_file()
        result = run_training(job, resume=resume)
        print(f"trained {result.steps} steps in {result.seconds:.0f} s ({result.steps_per_second:.2f} steps/s, "
              f"batch {job.train.batch_size}); final loss {result.final_loss:.3f}")
    steps["train"] = _phase_steps(train_dir / "summary.json", "fine-tuning")
    timings["train_s"] = time.perf_counter() - t0

    t0 = _phase(f"{n}/{n} evaluation: {cfg.eval.episodes} episodes per task, agents {', '.join(cfg.eval.agents)}")
    ecfg = EvalConfig(benchmark="embedded", checkpoint=str(train_dir / "policy"), agents=list(cfg.eval.agents),
                      tasks=list(cfg.tasks), episodes=cfg.eval.episodes, seeds=list(cfg.eval.seeds),
                      workers=cfg.eval.workers, out_dir=str(eval_dir), env=dict(cfg.env),
                      bounds=list(job.model.bounds))
    records = evaluate(ecfg)
    summary = summarise(records)
    paths = write_report(summary, eval_dir, title="embedded benchmark: success rate")
    failures = write_failures(records, eval_dir)
    timings["eval_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all

    table = markdown_table(summary)
    result = success_json(summary, "policy") if "policy" in summary else {}
    json_path = out / "demo_results.json"
    json_path.write_text(json.dumps(result, indent=1))
    run_info = {"minutes": {k.removesuffix("_s"): round(v / 60, 2) for k, v in timings.items()}, "steps": steps,
                "complete": all(p["complete"] for p in steps.values()), "machine": platform.processor()
                or platform.machine(), "cpus": os.cpu_count(), "load_average_1min_at_end": os.getloadavg()[0]}
    (out / "demo_run.json").write_text(json.dumps(run_info, indent=1))
    print("\n" + table)
    print(failures["md"].read_text())
    print("phases: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()))
    print("steps: " + ", ".join(f"{k} {v['steps_done']}/{v['steps_planned']}" for k, v in steps.items())
          + ("" if run_info["complete"] else "  <- CUT SHORT by a time cap, see the warning above"))
    print(f"policy success JSON: {json_path}; run record (minutes, steps done/planned): {out / 'demo_run.json'}")
    print(f"tables and plot: {paths['md']}, {paths['csv']}, {paths['png']}; failure reasons: {failures['md']}")
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
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out_dir) / "demo_config.json").write_text(json.dumps(to_dict(cfg), indent=1))
    res = run_demo(cfg)
    mean = res["success"].get("mean", 0.0)
    if mean < cfg.min_success:
        print(f"mean success {mean:.3f} is below min_success {cfg.min_success}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
