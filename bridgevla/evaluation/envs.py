"""Which environment a benchmark name means. The runner only ever calls :func:`make_env`.

A benchmark is a factory ``(options: dict) -> Environment``. Adapters for RLBench, COLOSSEUM and GemBench plug in
by adding a line to ``BENCHMARKS`` (imports stay lazy: their simulators are optional installs). Any
``"package.module:callable"`` also works as a benchmark name, which is how tests and user plug-ins add their own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from benchmarks.protocol import Environment


def _embedded(options: dict[str, Any]) -> Environment:
    from benchmarks.embedded import EmbeddedConfig, EmbeddedEnv
    from bridgevla.configuration import from_dict

    return EmbeddedEnv(from_dict(EmbeddedConfig, dict(options), prefix="env."))


BENCHMARKS: dict[str, Callable[[dict[str, Any]], Environment]] = {"embedded": _embedded}


def make_env(benchmark: str, options: dict[str, Any] | None = None) -> Environment:
    options = dict(options or {})
    if benchmark in BENCHMARKS:
        env = BENCHMARKS[benchmark](options)
    elif ":" in benchmark:
        module, attr = benchmark.split(":", 1)
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"benchmark: cannot load {benchmark!r} ({e})") from e
        env = factory(options)
    else:
        raise ValueError(f"benchmark: unknown {benchmark!r}; known: {sorted(BENCHMARKS)} or 'module:factory'")
    if not isinstance(env, Environment):
        raise ValueError(f"benchmark: {benchmark!r} built a {type(env).__name__}, which is not an Environment")
    return env
