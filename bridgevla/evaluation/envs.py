"""Which environment a benchmark name means, and the table it publishes. The runner only calls :func:`make_env`.

A benchmark is a factory ``(options: dict) -> Environment`` (options = the ``env.<key>=value`` overrides, checked
against the adapter's config dataclass) plus, for the published harnesses, the function that lays per-episode
records out as the paper tables do (:func:`published_tables`). Imports stay inside the factories: the simulators
are optional installs, and asking for one without it names the missing piece. Installed packages add theirs as
entry points in the group ``bridgevla.benchmarks`` (installing a package is the user's explicit choice). Any
``"package.module:callable"`` also works as a benchmark name, which is how tests and ad-hoc plug-ins add their own,
but it imports and runs whatever it names: ``make_env`` refuses it unless ``allow_code`` is set, so a config file
from elsewhere cannot execute code unless the user asks (``bridgevla eval --allow-code``).

A benchmark may also offer suites: named task lists with their own table layout (the embedded benchmark's
COLOSSEUM-like ``perturbations`` and GemBench-like ``levels``). The environment gets the option ``suite=<name>``
and lists the suite's tasks; ``published_tables(benchmark, records, suite)`` lays the records out as that suite's
table.

The published protocols (episodes, runs, seeds) are the shipped configs ``bridgevla/configs/eval_<name>.yaml``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.protocol import Environment
from benchmarks.tables import Table


def _embedded(options: dict[str, Any]) -> Environment:
    from benchmarks.embedded import EmbeddedConfig, EmbeddedEnv
    from bridgevla.configuration import from_dict

    return EmbeddedEnv(from_dict(EmbeddedConfig, dict(options), prefix="env."))


def _rlbench(options: dict[str, Any]) -> Environment:
    from benchmarks.rlbench.env import RLBenchConfig, RLBenchEnv
    from bridgevla.configuration import from_dict

    return RLBenchEnv(from_dict(RLBenchConfig, dict(options), prefix="env."))


def _colosseum(options: dict[str, Any]) -> Environment:
    from benchmarks.colosseum.env import ColosseumConfig, ColosseumEnv
    from bridgevla.configuration import from_dict

    return ColosseumEnv(from_dict(ColosseumConfig, dict(options), prefix="env."))


def _gembench(options: dict[str, Any]) -> Environment:
    from benchmarks.gembench.env import GemBenchConfig, GemBenchEnv
    from bridgevla.configuration import from_dict

    return GemBenchEnv(from_dict(GemBenchConfig, dict(options), prefix="env."))


def _rlbench_tables(records: Sequence[dict[str, Any]]) -> list[Table]:
    from benchmarks.rlbench.table import rlbench_tables

    return rlbench_tables(records)


def _colosseum_tables(records: Sequence[dict[str, Any]]) -> list[Table]:
    from benchmarks.colosseum.table import colosseum_tables

    return colosseum_tables(records)


def _gembench_tables(records: Sequence[dict[str, Any]]) -> list[Table]:
    from benchmarks.gembench.table import gembench_tables

    return gembench_tables(records)


def _embedded_perturbations(records: Sequence[dict[str, Any]]) -> list[Table]:
    from benchmarks.embedded.suites import perturbation_tables

    return perturbation_tables(records)


def _embedded_levels(records: Sequence[dict[str, Any]]) -> list[Table]:
    from benchmarks.embedded.suites import level_tables

    return level_tables(records)


TableLayout = Callable[[Sequence[dict[str, Any]]], list[Table]]


@dataclass(frozen=True)
class Benchmark:
    make: Callable[[dict[str, Any]], Environment]
    tables: TableLayout | None = None  # the published layout, if any
    suites: dict[str, TableLayout] = field(default_factory=dict)  # suite name -> its table layout


BENCHMARKS: dict[str, Benchmark] = {
    "embedded": Benchmark(_embedded, suites={"perturbations": _embedded_perturbations, "levels": _embedded_levels}),
    "rlbench": Benchmark(_rlbench, _rlbench_tables),
    "colosseum": Benchmark(_colosseum, _colosseum_tables),
    "gembench": Benchmark(_gembench, _gembench_tables),
}
ENTRY_POINT_GROUP = "bridgevla.benchmarks"


def _entry_point(name: str) -> Callable[[dict[str, Any]], Environment] | None:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    return found[0].load() if found else None


def check_suite(benchmark: str, suite: str) -> None:
    """A clear error unless ``suite`` is one of the benchmark's suites."""
    known = BENCHMARKS[benchmark].suites if benchmark in BENCHMARKS else {}
    if suite not in known:
        raise ValueError(f"suite: {suite!r} is not a suite of benchmark {benchmark!r} (it has {sorted(known)})")


def make_env(benchmark: str, options: dict[str, Any] | None = None, allow_code: bool = False) -> Environment:
    """The environment ``benchmark`` names: a registered name, an installed entry point, or (with ``allow_code``
    only) a ``package.module:factory`` reference."""
    if not isinstance(benchmark, str) or not benchmark:
        raise ValueError(f"benchmark: expected a name, got {benchmark!r}")
    options = dict(options or {})
    plugin = None if benchmark in BENCHMARKS or ":" in benchmark else _entry_point(benchmark)
    if benchmark in BENCHMARKS:
        env = BENCHMARKS[benchmark].make(options)
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


def published_tables(benchmark: str, records: Sequence[dict[str, Any]], suite: str = "") -> list[Table] | None:
    """The benchmark's published table layout of ``records``, or its suite's (None for benchmarks without one)."""
    if suite:
        check_suite(benchmark, suite)
        return BENCHMARKS[benchmark].suites[suite](records)
    entry = BENCHMARKS.get(benchmark)
    return entry.tables(records) if entry is not None and entry.tables is not None else None
