"""The registry of compile targets.  Adding a target means adding a package
under backends/ whose `target` module defines TARGET (an adacal.target.Target)
and one line here; the CLI's compile-<name> commands come from this table."""
from __future__ import annotations

import importlib

from adacal.errors import AdacalError
from adacal.target import Target

#: target name -> module defining TARGET (imported on first use)
REGISTRY = {
    "loihi2": "adacal.backends.loihi2.target",
    "xylo": "adacal.backends.xylo.target",
}


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Target:
    """The Target registered as name; AdacalError naming the choices otherwise."""
    if name not in REGISTRY:
        raise AdacalError(f"unknown target '{name}' (available: {', '.join(REGISTRY)})")
    return importlib.import_module(REGISTRY[name]).TARGET
