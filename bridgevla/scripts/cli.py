"""The ``bridgevla`` console script: ``bridgevla generate|train|eval|keypose-eval|inspect|data check|serve|robot|demo|
bench-data``.

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
    from benchmarks.tables import write_tables
    from bridgevla.evaluation.envs import published_tables
    from bridgevla.evaluation.failures import write_failures
    from bridgevla.evaluation.report import markdown_table, summarise, write_report
    from bridgevla.evaluation.runner import EvalConfig, evaluate

    flags = _flag_overrides(args, {"benchmark": "benchmark", "checkpoint": "checkpoint", "tasks": "tasks",
                                   "episodes": "episodes", "seeds": "seeds", "agents": "agents",
                                   "workers": "workers", "out": "out_dir", "ray_address": "ray_address",
                                   "suite": "suite"})
    overrides = list(args.overrides) + flags
    cfg = load_config(EvalConfig, args.config, overrides)
    allow = code_allowed("benchmark", cfg.benchmark, set(), args.config, overrides, args.allow_code)
    records = evaluate(cfg, allow_code=allow)
    summary = summarise(records)
    paths = write_report(summary, cfg.out_dir, title=f"{cfg.benchmark}: success rate", records=records)
    failures = write_failures(records, cfg.out_dir)
    tables = published_tables(cfg.benchmark, records, cfg.suite)
    if tables is None:
        print(markdown_table(summary))
    else:  # the paper's (or the suite's) layout (table.*) beside the generic per-task report (results.*)
        paths |= {f"table.{k}": v for k, v in write_tables(tables, cfg.out_dir, stem="table").items()}
        print(tables[0].markdown())
    print(failures["md"].read_text())
    print("results: " + ", ".join(str(p) for p in [*paths.values(), *failures.values()]))
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


def cmd_inspect(args: argparse.Namespace) -> int:
    from bridgevla.evaluation.inspection import InspectConfig, run_inspect
    from bridgevla.evaluation.rerun_log import RerunEpisodeLog

    flags = _flag_overrides(args, {"checkpoint": "checkpoint", "data": "data", "task": "task", "episode": "episode",
                                   "seed": "seed", "agent": "agent", "out": "out"})
    if args.serve:
        flags.append("serve=true")
    overrides = list(args.overrides) + flags
    cfg = load_config(InspectConfig, args.config, overrides)
    allow = code_allowed("benchmark", cfg.benchmark, set(), args.config, overrides, args.allow_code)
    log = RerunEpisodeLog(cfg.out, cfg.serve, cfg.grpc_port, cfg.web_port, cfg.open_browser)
    record = run_inspect(cfg, log, allow_code=allow)
    if not cfg.serve:
        log.close()
    outcome = "success" if record.get("success") else f"failure ({record.get('error') or 'not solved'})"
    print(f"{record.get('task')} episode {record.get('episode')}: {record.get('keyposes')} keyposes, {outcome}")
    if cfg.out:
        print(f"recording: {cfg.out}  (view it with `rerun {cfg.out}`)")
    if cfg.serve:
        import signal
        import threading

        # Ctrl-C or a kill ends the serving and finishes the file (its footer is written on close). Both handlers
        # are set explicitly: a process started in the background inherits an ignored SIGINT.
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(f"serving {log.url} until Ctrl-C", flush=True)
        while not stop.wait(1.0):
            pass
        log.close()
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


def cmd_layout(args: argparse.Namespace) -> int:
    """An embedded evaluation's episodes by layout (side of the mirror plane, direction of the plan), demos beside."""
    from benchmarks.fileio import read_jsonl
    from bridgevla.evaluation.envs import make_env
    from bridgevla.evaluation.layout import write_layout

    path = Path(args.episodes)
    if not path.is_file():
        raise ConfigError(f"--episodes: {path} is not a file (an evaluation's episodes.jsonl)")
    records = read_jsonl(path, repair=False).records  # a report reads; it does not rewrite the run's file
    if not records:
        raise ConfigError(f"--episodes: {path} holds no episode records")
    if args.demos and not Path(args.demos).is_dir():
        raise ConfigError(f"--demos: {args.demos} is not a folder (a dataset from bridgevla generate)")
    env = make_env("embedded")
    try:
        paths = write_layout(records, env, args.out or path.parent, args.demos, plane_y=args.plane_y)
    finally:
        env.close()
    print(paths["md"].read_text())
    print(f"written: {paths['md']}, {paths['json']}")
    return 0


def cmd_bench_data(args: argparse.Namespace) -> int:
    """Samples/s the data pipeline sustains on its own (compare with the trainer's steps/s × batch size)."""
    from bridgevla.data.dataset import KeyframeBatches, KeyframeDataset
    from bridgevla.training.job import load_job_config

    cfg = load_job_config(args.config, list(args.overrides))
    ds = KeyframeDataset(cfg.data, cfg.model.bounds, seed=cfg.train.seed, max_points=cfg.model.max_points,
                         cameras=cfg.model.cameras, memory=cfg.model.memory_markers())
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


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from bridgevla.serving.server import ServeConfig, load_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    flags = _flag_overrides(args, {"checkpoint": "checkpoint", "host": "host", "port": "port", "device": "device"})
    cfg = load_config(ServeConfig, args.config, list(args.overrides) + flags)
    server = load_server(cfg)
    print(f"bridgevla serve: {server.metadata['preset']} policy (weights sha256 "
          f"{server.metadata['weights_sha256'][:12]}…) on ws://{cfg.host}:{cfg.port}; GET /healthz; Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_robot(args: argparse.Namespace) -> int:
    import logging

    from bridgevla.serving.robot import RobotConfig, calibrate_robot, record_robot, run_robot

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = load_config(RobotConfig, args.config, list(args.overrides))
    if args.action == "run":
        result = run_robot(cfg)
        if cfg.backend == "sim":
            from bridgevla.evaluation.report import markdown_table, summarise

            print(markdown_table(summarise(result)))
        print(f"episode logs: {Path(cfg.log_dir) / 'episodes'}")
    elif args.action == "calibrate":
        print(f"calibration written to {calibrate_robot(cfg)}")
    else:
        paths = record_robot(cfg)
        print(f"{len(paths)} demos written under {cfg.record.out}")
    return 0


def _robot_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bridgevla robot", description="run | calibrate | record on a robot "
                                "(backend sim or franka), configured by robot.yaml (docs/robot.md)")
    p.add_argument("action", choices=["run", "calibrate", "record"])
    _add_common(p)
    return p


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
    p.add_argument("--benchmark", help="embedded, rlbench, colosseum, gembench, or package.module:factory")
    p.add_argument("--checkpoint", help="a policy directory (train.out_dir/policy)")
    p.add_argument("--tasks", help="comma-separated task names (default: all)")
    p.add_argument("--episodes", type=int, help="episodes per task and seed")
    p.add_argument("--seeds", help="comma-separated evaluation seeds")
    p.add_argument("--agents", help="comma-separated: policy, random, expert")
    p.add_argument("--workers", type=int, help="parallel processes (or Ray actors), one environment each")
    p.add_argument("--ray-address", dest="ray_address",
                   help="fan episodes out over Ray: auto (running cluster), local, or ray://host:port")
    p.add_argument("--out", help="output folder (episodes.jsonl, results.*)")
    p.add_argument("--allow-code", action="store_true", help="let a module:factory benchmark named in --config be "
                                                             "imported and run")
    p.add_argument("--suite", help="a suite of the benchmark (embedded: perturbations, levels): its task list, "
                                   "and its table layout (table.*)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("keypose-eval", help="offline keypose accuracy on held-out demos, no simulator "
                                             "(docs/evaluation.md)")
    _add_common(p)
    p.add_argument("--checkpoint", help="a policy directory (train.out_dir/policy)")
    p.add_argument("--data", help="a dataset folder of held-out episodes")
    p.add_argument("--tasks", help="comma-separated task names (default: all in the dataset)")
    p.add_argument("--out", help="JSON file for the results")
    p.set_defaults(func=cmd_keypose_eval)

    p = sub.add_parser("inspect", help="a rerun recording of one episode: clouds, views, heatmaps, keyposes, errors "
                                        "(docs/inspection.md; needs the [viz] extra)")
    _add_common(p)
    p.add_argument("--checkpoint", help="a policy directory (train.out_dir/policy)")
    p.add_argument("--data", help="a stored episode folder (demo or robot run), or a dataset root with --task")
    p.add_argument("--task", help="the task of the episode")
    p.add_argument("--episode", type=int, help="the episode index (as in bridgevla eval, or the dataset's)")
    p.add_argument("--seed", type=int, help="the evaluation seed (as in bridgevla eval)")
    p.add_argument("--agent", help="policy (default), expert or random")
    p.add_argument("--out", help="the .rrd file to write (default runs/inspect/episode.rrd)")
    p.add_argument("--serve", action="store_true", help="also stream live to a local web viewer, until Ctrl-C")
    p.add_argument("--allow-code", action="store_true", help="let a module:factory benchmark named in --config be "
                                                             "imported and run")
    p.set_defaults(func=cmd_inspect)
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

    p = sub.add_parser("layout", help="an embedded evaluation's success by layout (side, direction) next to the "
                                      "demos' (docs/evaluation.md)")
    p.add_argument("episodes", help="episodes.jsonl of a `bridgevla eval --benchmark embedded` run")
    p.add_argument("--demos", help="the demos' dataset folder, to count them by the same layouts")
    p.add_argument("--out", help="folder for layout.md / layout.json (default: the episodes' folder)")
    p.add_argument("--plane-y", type=float, default=0.0, help="the mirror plane y = c that splits the sides "
                                                               "(default 0: the embedded scene's)")
    p.set_defaults(func=cmd_layout)

    p = sub.add_parser("bench-data", help="measure the data pipeline's samples/s")
    _add_common(p)
    p.add_argument("--batches", type=int, default=20)
    p.set_defaults(func=cmd_bench_data)

    p = sub.add_parser("serve", help="serve a policy to robots over websockets, openpi-compatible (docs/robot.md)")
    _add_common(p)
    p.add_argument("--checkpoint", help="a policy directory (train.out_dir/policy)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1, ...")
    p.set_defaults(func=cmd_serve)

    sub.add_parser("robot", help="run, calibrate or record demos on a robot (sim or Franka; docs/robot.md); "
                                 "`bridgevla robot --help` for its options", add_help=False)

    p = sub.add_parser("demo", help="generate demos, train, evaluate: the `make demo` pipeline")
    _add_common(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["generate"]:  # its own parser: argparse cannot pass `--flags` through a sub-command untouched
        return cmd_generate(argparse.Namespace(args=argv[1:]))
    if argv[:1] == ["robot"]:
        # `robot ACTION --config F key=value`: positionals on both sides of an option need intermixed parsing,
        # which argparse refuses on the main parser (generate's REMAINDER); the sub-command has its own parser.
        args = _robot_parser().parse_intermixed_args(argv[1:])
        args.command, args.func = "robot", cmd_robot
    else:
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
