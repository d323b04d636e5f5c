"""Imports run one way (shared/DESIGN.md, docs/CONTRIBUTING.md):

    rendering  <-  benchmarks  <-  bridgevla  <-  pretrain        (bridgevla.scripts: entry points, import anything)

and inside ``bridgevla`` the pipeline order ``configuration <- data <- model <- training <- evaluation <- serving``.
Every import statement counts, including the lazy ones inside functions: a lazy import against the order is still a
dependency against it. The checker itself is tested on made-up sources, so this test can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rendering", "benchmarks", "bridgevla", "pretrain")
# Layer of a module = the longest matching prefix; a module may import modules of its own layer or lower ones.
LAYERS: list[tuple[str, int]] = [
    ("rendering", 0),
    ("benchmarks", 1),
    ("bridgevla.configuration", 2),
    ("bridgevla.data", 3),
    ("bridgevla.model", 4),
    ("bridgevla.training", 5),
    ("bridgevla.evaluation", 6),
    ("bridgevla.serving", 7),
    ("bridgevla", 7),  # the package's own __init__ (lazy public names)
    ("pretrain", 8),
    ("bridgevla.scripts", 9),  # entry points: the CLI, the demo orchestration, speed scripts
    ("bridgevla.__main__", 9),
]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > best[0]:
                best = (len(prefix), layer)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``source`` (relative imports resolved against ``module``)."""
    out = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import sub`` may name a submodule: count it at the submodule's layer when it is one.
            out += [(node.lineno, f"{base}.{a.name}" if layer_of(f"{base}.{a.name}") is not None else base)
                    for a in node.names]
    return out


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    mine = layer_of(module)
    bad = []
    for line, target in imported_modules(source, module, is_package):
        theirs = layer_of(target)
        if theirs is None or target.split(".")[0] not in PACKAGES:
            continue  # third-party or standard library
        if theirs > mine:
            bad.append(f"{module}:{line} imports {target}")
    return bad


def test_no_module_imports_against_the_order():
    found = []
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 50  # the walk really found the packages
    for path in files:
        found += violations(path.read_text(), module_name(path), path.name == "__init__.py")
    assert not found, "imports against rendering <- benchmarks <- bridgevla <- pretrain:\n" + "\n".join(found)


@pytest.mark.parametrize(("module", "source", "ok"), [
    ("benchmarks.embedded.env", "from bridgevla.model.policy import BridgeVLAPolicy", False),
    ("benchmarks.embedded.env", "def f():\n    import bridgevla.configuration\n", False),  # lazy counts too
    ("rendering.render", "from benchmarks.protocol import Observation", False),
    ("bridgevla.model.policy", "from pretrain.scenes import tabletop_samples", False),
    ("bridgevla.model.policy", "from bridgevla.training.loop import Trainer", False),
    ("bridgevla.data.dataset", "from ..model import policy", False),  # relative import resolved
    ("bridgevla.training.job", "from bridgevla.model.policy import BridgeVLAPolicy", True),
    ("bridgevla.scripts.demo", "from pretrain.job import run_pretraining", True),
    ("pretrain.job", "from bridgevla.training.loop import Trainer\nimport torch", True),
    ("benchmarks.generate", "from rendering import SceneBounds\nimport numpy", True),
])
def test_the_checker_flags_imports_against_the_order(module, source, ok):
    assert (violations(source, module) == []) is ok
