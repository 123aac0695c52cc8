"""The house's import directions, checked on the source (every import
statement, module level or inside a function):

- runtime_sim/ (simulator arithmetic) imports no backend;
- a backend imports no other backend, and of the compiler only its public
  interfaces (IR, errors, the Target interface, summaries, progress, the
  walker), never its pipeline, artifact, CLI or registry;
- compiler/ imports no vendor package (they live in their backend);
- passes/ (target-free) import no backend.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENDORS = {"lava", "rockpool", "xylosim", "samna", "h5py"}
#: what a backend may import from the compiler package (adacal.<name>)
COMPILER_PUBLIC = {"ir", "int_ir", "errors", "target", "target_report", "summary", "progress", "interpret",
                   "walker"}
COMPILER_MODULES = {p.stem for p in (ROOT / "compiler").glob("*.py")} - {"__init__", "__main__"}


def imports(source: str) -> list[str]:
    """Every module an import statement in source names (absolute; for
    `from a.b import c` the module a.b.c, which may also be a name in a.b)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def violations(folder: str, source: str) -> list[str]:
    """The import rules broken by source, a file in folder (e.g. 'backends/xylo')."""
    top = folder.split("/")[0]
    bad = []
    for mod in imports(source):
        parts = mod.split(".")
        if top == "runtime_sim" and parts[:2] == ["adacal", "backends"]:
            bad.append(f"runtime_sim imports backend {mod}")
        if top == "passes" and parts[:2] == ["adacal", "backends"]:
            bad.append(f"passes import backend {mod}")
        if top == "compiler" and parts[0] in VENDORS:
            bad.append(f"compiler imports vendor package {mod}")
        if top == "backends":
            own = folder.split("/")[1] if "/" in folder else None
            if parts[:2] == ["adacal", "backends"] and len(parts) > 2 and parts[2] != own:
                bad.append(f"backend {own} imports backend {mod}")
            if (parts[0] == "adacal" and len(parts) > 1 and parts[1] in COMPILER_MODULES
                    and parts[1] not in COMPILER_PUBLIC):
                bad.append(f"backend {own} imports compiler internals {mod}")
    return list(dict.fromkeys(bad))


def _sources():
    for top in ("compiler", "runtime_sim", "passes", "backends", "frontends"):
        for p in sorted((ROOT / top).rglob("*.py")):
            yield p.relative_to(ROOT)


@pytest.mark.parametrize("rel", list(_sources()), ids=str)
def test_file_follows_import_rules(rel):
    assert violations(str(rel.parent), (ROOT / rel).read_text()) == []


@pytest.mark.parametrize("folder, source, expected", [
    ("runtime_sim", "from adacal.backends.xylo.compat import x", "runtime_sim imports backend"),
    ("runtime_sim", "def f():\n    import adacal.backends.loihi2.lava_net\n", "runtime_sim imports backend"),
    ("backends/xylo", "from adacal.backends.loihi2 import lower", "backend xylo imports backend"),
    ("backends/loihi2", "from adacal.backends import xylo", "backend loihi2 imports backend"),
    ("backends/xylo", "from adacal.pipeline import evaluate", "imports compiler internals"),
    ("backends/xylo", "from adacal import artifact", "imports compiler internals"),
    ("compiler", "import h5py", "compiler imports vendor package"),
    ("compiler", "def f():\n    from lava.proc.dense.process import Dense\n", "compiler imports vendor package"),
    ("passes", "from adacal.backends.loihi2.lower import lower_loihi2", "passes import backend"),
])
def test_each_rule_catches_its_violation(folder, source, expected):
    found = violations(folder, source)
    assert len(found) == 1 and expected in found[0], found


def test_allowed_imports_pass():
    assert violations("backends/xylo", "from adacal import ir\nfrom adacal.target import Target\n"
                      "from adacal.backends.xylo.devices import get_device\nimport numpy") == []
    assert violations("compiler", "from adacal.backends.nir.export import nir_writer") == []
