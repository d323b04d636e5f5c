"""The ``bridgevla`` console script: ``bridgevla generate|train|eval|keypose-eval|demo|bench-data``.

Every sub-command takes ``--config FILE`` (YAML) and trailing ``key=value`` overrides (``bridgevla.configuration``);
the few named flags are shorthands for the most common overrides. A configuration mistake prints one line naming
the key and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bridgevla.configuration import ConfigError, load_config


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (see bridgevla/configs/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=500 optim.lr=1e-4")


def _flag_overrides(args: argparse.Namespace, mapping: dict[str, str]) -> list[str]:
    out = []
    for attr, key in mapping.items():
        value = getattr(args, attr, None)
        if value is not None:
            out.append(f"{key}={value}")
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from bridgevla.training.job import load_job_config, run_training

    cfg = load_job_config(args.config, list(args.overrides) + _flag_overrides(args, {"out": "train.out_dir"}))
    result = run_training(cfg, resume=args.resume)
    print(f"trained {result.steps} steps in {result.seconds:.1f} s ({result.steps_per_second:.2f} steps/s); "
          f"final loss {result.final_loss:.4f}; policy saved to {Path(cfg.train.out_dir) / 'policy'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from bridgevla.evaluation.report import markdown_table, summarise, write_report, write_suite_report
    from bridgevla.evaluation.runner import EvalConfig, evaluate

    flags = _flag_overrides(args, {"benchmark": "benchmark", "checkpoint": "checkpoint", "tasks": "tasks",
                                   "episodes": "episodes", "seeds": "seeds", "agents": "agents",
                                   "workers": "workers", "out": "out_dir", "suite": "suite"})
    cfg = load_config(EvalConfig, args.config, list(args.overrides) + flags)
    records = evaluate(cfg)
    summary = summarise(records)
    paths = write_report(summary, cfg.out_dir, title=f"{cfg.benchmark}: success rate")
    if cfg.suite:
        tables, suite_paths = write_suite_report(records, cfg.benchmark, cfg.suite, cfg.out_dir,
                                                 title=f"{cfg.benchmark} {cfg.suite}: success rate")
        paths |= {f"suite_{k}": v for k, v in suite_paths.items()}
        print("".join(f"{agent}:\n{t.markdown()}\n\n" for agent, t in tables.items()))
    else:
        print(markdown_table(summary))
    print("results: " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_keypose_eval(args: argparse.Namespace) -> int:
    from bridgevla.evaluation.keypose_eval import KeyposeEvalConfig, markdown, run

    flags = _flag_overrides(args, {"checkpoint": "checkpoint", "data": "data", "tasks": "tasks", "out": "out"})
    cfg = load_config(KeyposeEvalConfig, args.config, list(args.overrides) + flags)
    results = run(cfg)
    print(markdown(results, cfg))
    if cfg.out:
        print(f"results: {cfg.out}")
    return 0


def cmd_bench_data(args: argparse.Namespace) -> int:
    """Samples/s the data pipeline sustains on its own (compare with the trainer's steps/s × batch size)."""
    from bridgevla.data.dataset import KeyframeBatches, KeyframeDataset
    from bridgevla.training.job import load_job_config

    cfg = load_job_config(args.config, list(args.overrides))
    ds = KeyframeDataset(cfg.data, cfg.model.bounds, seed=cfg.train.seed, max_points=cfg.model.max_points,
                         cameras=cfg.model.cameras)
    for workers in sorted({0, cfg.train.num_workers}):
        it = iter(KeyframeBatches(ds, cfg.train.batch_size, workers).iterate(0))
        next(it)  # worker start-up is not throughput
        t0 = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        dt = time.perf_counter() - t0
        print(json.dumps({"num_workers": workers, "batch_size": cfg.train.batch_size, "batches": args.batches,
                          "samples_per_second": round(args.batches * cfg.train.batch_size / dt, 2),
                          "cache": cfg.data.cache}))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from bridgevla.scripts.generate import main as generate_main

    return generate_main(list(args.args))


def cmd_demo(args: argparse.Namespace) -> int:
    from bridgevla.scripts.demo import main as demo_main

    return demo_main((["--config", args.config] if args.config else []) + list(args.overrides))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridgevla", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="expert demos of a simulated benchmark into a dataset folder "
                                         "(docs/dataset.md); `bridgevla generate --help` for its options",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("train", help="train a policy (docs/training.md)")
    _add_common(p)
    p.add_argument("--resume", action="store_true", help="continue the run in train.out_dir from its last checkpoint")
    p.add_argument("--out", help="shorthand for train.out_dir=")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a policy and/or baselines (docs/evaluation.md)")
    _add_common(p)
    p.add_argument("--benchmark", help="embedded, or package.module:factory")
    p.add_argument("--checkpoint", help="a policy directory (train.out_dir/policy)")
    p.add_argument("--tasks", help="comma-separated task names (default: all)")
    p.add_argument("--episodes", type=int, help="episodes per task and seed")
    p.add_argument("--seeds", help="comma-separated evaluation seeds")
    p.add_argument("--agents", help="comma-separated: policy, random, expert")
    p.add_argument("--workers", type=int, help="parallel processes, one environment each")
    p.add_argument("--out", help="output folder (episodes.jsonl, results.*)")
    p.add_argument("--suite", help="a suite of the benchmark (embedded: perturbations, levels); adds its "
                                   "published table (suite.*)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("keypose-eval", help="offline keypose accuracy on held-out demos, no simulator "
                                             "(docs/evaluation.md)")
    _add_common(p)
    p.add_argument("--checkpoint", help="a policy directory (train.out_dir/policy)")
    p.add_argument("--data", help="a dataset folder of held-out episodes")
    p.add_argument("--tasks", help="comma-separated task names (default: all in the dataset)")
    p.add_argument("--out", help="JSON file for the results")
    p.set_defaults(func=cmd_keypose_eval)

    p = sub.add_parser("bench-data", help="measure the data pipeline's samples/s")
    _add_common(p)
    p.add_argument("--batches", type=int, default=20)
    p.set_defaults(func=cmd_bench_data)

    p = sub.add_parser("demo", help="generate demos, train, evaluate: the `make demo` pipeline")
    _add_common(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["generate"]:  # its own parser: argparse cannot pass `--flags` through a sub-command untouched
        return cmd_generate(argparse.Namespace(args=argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, ValueError) as e:
        print(f"bridgevla {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
