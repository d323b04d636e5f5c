"""Which environment a benchmark name means. The runner only ever calls :func:`make_env`.

A benchmark is a factory ``(options: dict) -> Environment``. Adapters for RLBench, COLOSSEUM and GemBench plug in
by adding a line to ``BENCHMARKS`` (imports stay lazy: their simulators are optional installs). Installed packages
add theirs as entry points in the group ``bridgevla.benchmarks`` (installing a package is the user's explicit
choice). Any ``"package.module:callable"`` also works as a benchmark name, which is how tests and ad-hoc plug-ins
add their own, but it imports and runs whatever it names: ``make_env`` refuses it unless ``allow_code`` is set, so a
config file from elsewhere cannot execute code unless the user asks (``bridgevla eval --allow-code``).
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
ENTRY_POINT_GROUP = "bridgevla.benchmarks"


def _entry_point(name: str) -> Callable[[dict[str, Any]], Environment] | None:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    return found[0].load() if found else None


def make_env(benchmark: str, options: dict[str, Any] | None = None, allow_code: bool = False) -> Environment:
    """The environment ``benchmark`` names: a registered name, an installed entry point, or (with ``allow_code``
    only) a ``package.module:factory`` reference."""
    if not isinstance(benchmark, str) or not benchmark:
        raise ValueError(f"benchmark: expected a name, got {benchmark!r}")
    options = dict(options or {})
    plugin = None if benchmark in BENCHMARKS or ":" in benchmark else _entry_point(benchmark)
    if benchmark in BENCHMARKS:
        env = BENCHMARKS[benchmark](options)
    elif plugin is not None:
        env = plugin(options)
    elif ":" in benchmark:
        if not allow_code:
            raise ValueError(f"benchmark: {benchmark!r} names Python code to import and run; pass --allow-code "
                             f"(evaluate(..., allow_code=True)) if you trust it, or install it as an entry point "
                             f"in the group {ENTRY_POINT_GROUP!r}")
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
