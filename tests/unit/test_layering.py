"""DESIGN.md's layering, enforced: imports inside thalia point down only; mass and spiking never
import each other; the base layer imports no model code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "thalia"

#: Layer of each top-level part of the package (higher may import lower, never the reverse).
LAYERS = {
    "__init__": 0,
    "_validation": 0,
    "_logging": 0,
    "params": 0,
    "spectra": 0,
    "io": 0,
    "datasets": 0,
    "mass": 1,
    "spiking": 1,
    "core": 2,  # the spiking seed's import path (re-exports)
    "inference": 2,
    "tcm": 3,  # the tcm_py seed's function facade (mass + inference)
    "bridge": 3,
    "viz": 4,
    "report": 4,
    "cli": 5,
    "__main__": 6,  # python -m thalia: runs the cli
}
NEVER = {("mass", "spiking"), ("spiking", "mass")}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    here = list(rel.parts)
    if here[-1] == "__init__":
        here = here[:-1]
    else:
        here = here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("thalia")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("thalia"):
                found.append(module)
    return found


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_a_layer():
    parts = {_part(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)) for p in _sources()}
    assert parts <= set(LAYERS), f"unclassified parts: {parts - set(LAYERS)}"


def _violations(me: str, modules: list[str]) -> list[str]:
    bad = []
    for module in modules:
        other = _part(module)
        if other == me or module == "thalia":
            continue
        if (me, other) in NEVER:
            bad.append(f"{me} must never import {other} ({module})")
        elif not (LAYERS[other] < LAYERS[me] or LAYERS[other] == LAYERS[me] == 0):
            bad.append(f"{me} (layer {LAYERS[me]}) imports {module} (layer {LAYERS[other]})")
    return bad


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    me = _part(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    assert _violations(me, _imports(path)) == []


def test_checker_flags_upward_and_sideways_imports():
    assert _violations("params", ["thalia.mass.tcm"])  # base importing a model
    assert _violations("mass", ["thalia.spiking.engine"])  # the two scales
    assert _violations("mass", ["thalia.viz"])  # figures from the core
    assert _violations("bridge", ["thalia.mass", "thalia.inference", "thalia.params"]) == []
