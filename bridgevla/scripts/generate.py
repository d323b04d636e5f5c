"""Expert demo generation's command line: ``bridgevla generate --tasks … --episodes N --out DIR [--workers K]``
(also ``python -m bridgevla.scripts.generate``; ``make demos``).

The generation itself is ``benchmarks.generate`` (episode ``i`` of a task: seed ``i``, variation ``i mod
variations``; atomic episode folders; resumable; spawned workers). This entry point only parses: ``--config FILE``
plus ``key=value`` overrides into a ``GenerateConfig`` through the one config system, and the free-form
``env_config`` mapping into the environment's own config dataclass, so a wrong key anywhere is named before any
simulator starts. It lives here, not in ``benchmarks``, because ``benchmarks`` sits below ``bridgevla`` in the
import order and the config system is ``bridgevla``'s.

Exit status: 0 when every expert episode succeeded, 1 when any failed its success check, 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.generate import GenerateConfig, env_config_type, generate, print_summary
from bridgevla.configuration import ConfigError, from_dict, load_config


def resolve_env_config(spec: str, env_config: dict[str, Any] | None) -> Any:
    """``env_config`` (a mapping from YAML or ``env_config.key=value``) as the config dataclass of env ``spec``."""
    if not env_config:
        return None
    expected = env_config_type(spec)
    if expected is None:
        raise ConfigError(f"env_config given but {spec} has no dataclass-typed 'config' argument")
    return from_dict(expected, dict(env_config), prefix="env_config.")


def parse_args(argv: list[str] | None = None) -> GenerateConfig:
    p = argparse.ArgumentParser(prog="bridgevla generate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, default=None, help="YAML file with GenerateConfig fields")
    p.add_argument("--tasks", nargs="+", default=None, help="task names (default: all)")
    p.add_argument("--episodes", type=int, default=None, help="episodes per task")
    p.add_argument("--out", default=None, help="output dataset folder")
    p.add_argument("--workers", type=int, default=None, help="worker processes (spawned)")
    p.add_argument("--seed-offset", type=int, default=None, help="first episode index / seed")
    p.add_argument("--image-every", type=int, default=None, help="camera images every N ticks")
    p.add_argument("--env", default=None, help="environment as module:Class")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. env_config.image_size=64")
    a = p.parse_args(argv)
    flags = {"tasks": a.tasks, "episodes": a.episodes, "out": a.out, "workers": a.workers,
             "seed_offset": a.seed_offset, "image_every": a.image_every, "env": a.env}
    overrides = list(a.overrides)
    overrides += [f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in flags.items() if v is not None]
    return load_config(GenerateConfig, a.config, overrides)


def run(cfg: GenerateConfig) -> int:
    """Generate, print the per-task summary; 1 if any expert episode failed."""
    summary = generate(cfg, resolve_env_config(cfg.env, cfg.env_config))
    print_summary(summary)
    failed = sum(len(s["failed_indices"]) for s in summary.values())
    if failed:
        print(f"{failed} expert episode(s) failed their success check", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    # Generation is headless: without this MuJoCo would try a windowed GL context. Set before the env is imported.
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        cfg = parse_args(argv)
        return run(cfg)
    except (ConfigError, ValueError) as e:
        print(f"bridgevla generate: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
