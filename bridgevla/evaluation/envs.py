"""Which environment a benchmark name means, and which suites it offers. The runner only ever calls
:func:`make_env`; the report only :func:`suite_table`.

A benchmark is a factory ``(options: dict) -> Environment``. Adapters for RLBench, COLOSSEUM and GemBench plug in
by adding a line to ``BENCHMARKS`` (imports stay lazy: their simulators are optional installs). Any
``"package.module:callable"`` also works as a benchmark name, which is how tests and user plug-ins add their own.

A suite is a named task list of a benchmark with its own published table layout: the environment gets the option
``suite=<name>`` (it then lists the suite's tasks), and ``SUITES[benchmark][name]`` turns the episode records into
the table (``benchmarks.tables``: ``markdown()``, ``csv()``, ``json()``, ``bars()``).
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


def _embedded_perturbations(records: list[dict[str, Any]]) -> Any:
    from benchmarks.embedded.suites import perturbation_table

    return perturbation_table(records)


def _embedded_levels(records: list[dict[str, Any]]) -> Any:
    from benchmarks.embedded.suites import level_table

    return level_table(records)


# benchmark -> suite -> (episode records -> table). The embedded benchmark: COLOSSEUM-like perturbation factors
# and GemBench-like generalisation levels (docs/tasks.md).
SUITES: dict[str, dict[str, Callable[[list[dict[str, Any]]], Any]]] = {
    "embedded": {"perturbations": _embedded_perturbations, "levels": _embedded_levels},
}


def check_suite(benchmark: str, suite: str) -> None:
    known = SUITES.get(benchmark, {})
    if suite not in known:
        raise ValueError(f"suite: {suite!r} is not a suite of benchmark {benchmark!r} (it has {sorted(known)})")


def suite_table(benchmark: str, suite: str, records: list[dict[str, Any]]) -> Any:
    """The suite's published table of ``records`` (one agent's episodes)."""
    check_suite(benchmark, suite)
    return SUITES[benchmark][suite](records)


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
