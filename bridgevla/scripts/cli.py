"""The ``bridgevla`` console script: ``bridgevla generate|train|eval|keypose-eval|data check|demo|bench-data``.

Every sub-command takes ``--config FILE`` (YAML) and trailing ``key=value`` overrides (``bridgevla.configuration``);
the few named flags are shorthands for the most common overrides. A configuration mistake (a wrong key or value,
malformed YAML, a bad dataset or checkpoint) prints one message naming the key or file and exits with status 2,
without a traceback; a file-system error (permissions, a full disk) exits with status 1 the same way. Under torchrun
only rank 0 prints results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bridgevla.configuration import ConfigError, code_allowed, load_config


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (see bridgevla/configs/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=500 optim.lr=1e-4")


LIST_FLAGS = {"tasks", "seeds", "agents"}  # comma-separated on the command line, lists in the config


def _flag_overrides(args: argparse.Namespace, mapping: dict[str, str]) -> list[str]:
    out = []
    for attr, key in mapping.items():
        value = getattr(args, attr, None)
        if value is not None:
            # "--seeds 0" must mean [0], not the integer 0 that a bare YAML value would give.
            out.append(f"{key}=[{value}]" if attr in LIST_FLAGS else f"{key}={value}")
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from bridgevla.training.job import load_job_config, run_training
    from bridgevla.training.loop import trainer_rank

    cfg = load_job_config(args.config, list(args.overrides) + _flag_overrides(args, {"out": "train.out_dir"}))
    result = run_training(cfg, resume=args.resume)
    if trainer_rank() == 0:  # every torchrun rank runs this; only rank 0 saved the policy
        print(f"trained {result.steps} steps in {result.seconds:.1f} s ({result.steps_per_second:.2f} steps/s); "
              f"final loss {result.final_loss:.4f}; policy saved to {Path(cfg.train.out_dir) / 'policy'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from bridgevla.evaluation.report import markdown_table, summarise, write_report
    from bridgevla.evaluation.runner import EvalConfig, evaluate

    flags = _flag_overrides(args, {"benchmark": "benchmark", "checkpoint": "checkpoint", "tasks": "tasks",
                                   "episodes": "episodes", "seeds": "seeds", "agents": "agents",
                                   "workers": "workers", "out": "out_dir"})
    overrides = list(args.overrides) + flags
    cfg = load_config(EvalConfig, args.config, overrides)
    allow = code_allowed("benchmark", cfg.benchmark, set(), args.config, overrides, args.allow_code)
    records = evaluate(cfg, allow_code=allow)
    summary = summarise(records)
    paths = write_report(summary, cfg.out_dir, title=f"{cfg.benchmark}: success rate")
    print(markdown_table(summary))
    print("results: " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_keypose_eval(args: argparse.Namespace) -> int:
    from bridgevla.evaluation.keypose_eval import KeyposeEvalConfig, evaluate_checkpoint, markdown, write_results

    flags = _flag_overrides(args, {"checkpoint": "checkpoint", "data": "data", "tasks": "tasks", "out": "out"})
    cfg = load_config(KeyposeEvalConfig, args.config, list(args.overrides) + flags)
    results = evaluate_checkpoint(cfg)  # checks that cfg.out is writable before the long part
    print(markdown(results, cfg), flush=True)  # on the screen first: a failing write cannot lose them
    write_results(cfg, results)
    if cfg.out:
        print(f"results: {cfg.out}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    """Validate a dataset folder; exit 0 when clean, 1 when any file is bad (each one printed)."""
    from benchmarks.dataset_check import check_dataset
    from rendering import SceneBounds

    bounds = None
    if args.bounds:
        try:
            bounds = SceneBounds.from_list([float(v) for v in args.bounds.split(",")])
        except ValueError as e:
            raise ConfigError(f"--bounds: {e}") from e
    elif args.config:
        from bridgevla.training.job import load_job_config

        bounds = SceneBounds.from_list(load_job_config(args.config, []).model.bounds)
    tasks = [t for t in (args.tasks or "").split(",") if t] or None
    report = check_dataset(args.dir, tasks, bounds, args.max_outside, images=not args.no_images, progress=True)
    print(report.text(limit=args.limit))
    return 0 if report.ok else 1


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
    p.add_argument("--allow-code", action="store_true", help="let a module:factory benchmark named in --config be "
                                                             "imported and run")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("keypose-eval", help="offline keypose accuracy on held-out demos, no simulator "
                                             "(docs/evaluation.md)")
    _add_common(p)
    p.add_argument("--checkpoint", help="a policy directory (train.out_dir/policy)")
    p.add_argument("--data", help="a dataset folder of held-out episodes")
    p.add_argument("--tasks", help="comma-separated task names (default: all in the dataset)")
    p.add_argument("--out", help="JSON file for the results")
    p.set_defaults(func=cmd_keypose_eval)

    p = sub.add_parser("data", help="dataset tools: `bridgevla data check DIR` validates every file")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("check", help="validate every file of a dataset folder (docs/dataset.md); exit 1 if any "
                                          "is bad")
    q.add_argument("dir", help="a dataset folder (bridgevla generate --out)")
    q.add_argument("--tasks", help="comma-separated task folders (default: all)")
    q.add_argument("--bounds", help="xmin,ymin,zmin,xmax,ymax,zmax: report keyposes outside these scene bounds")
    q.add_argument("--config", help="a training YAML: take the scene bounds from its model.bounds")
    q.add_argument("--max-outside", type=float, default=0.05, help="metres a keypose may lie outside the bounds "
                                                                   "before it is an error (default 0.05)")
    q.add_argument("--no-images", action="store_true", help="skip decoding every PNG (checksums still cover them)")
    q.add_argument("--limit", type=int, default=200, help="problems printed at most")
    q.set_defaults(func=cmd_data_check)

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
    except OSError as e:  # the file system said no (permissions, a full disk): named, not a traceback
        print(f"bridgevla {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
