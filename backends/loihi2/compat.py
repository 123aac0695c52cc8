"""Make Lava (lava-nc 0.10.0) importable on Python >= 3.11, from our own code.

:func:`ensure_lava` installs a ``sys.meta_path`` finder for the one broken
vendor module, ``lava/magma/compiler/var_model.py`` (``ByteEncoder()``
instances as dataclass defaults, lines 210-238, rejected since Python 3.11):
only while that module's source still has the bug, it executes a rewritten
copy under the vendor path, with every line number kept and nothing written
to disk.  It also imports Lava's message infrastructure even when someone
else already set the multiprocessing start method.  Why and how:
docs/loihi2.md, "Lava quirks".

No side effects at import and no Lava Process here: Lava's model discovery
may execute this file again under another name, so the hook is recognised by
a marker attribute, not by class identity.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
from typing import Optional

__all__ = [
    "VAR_MODEL_MODULE",
    "ensure_lava",
    "lava_fixed_pt_run_config",
    "source_has_mutable_default",
    "rewrite_var_model_source",
]

#: The only vendor module the hook ever touches.
VAR_MODEL_MODULE = "lava.magma.compiler.var_model"

# An annotated class attribute whose default is a fresh ``ByteEncoder()``
# instance, e.g. ``    x: ByteEncoder = ByteEncoder()`` (var_model.py lines
# 221-223, 229-231, 237-238).  Indented only: class bodies, never module level.
_BUGGY_DEFAULT = re.compile(
    r"^(?P<head>[ \t]+[A-Za-z_]\w*[ \t]*:[^=\n#]*?)"
    r"=[ \t]*ByteEncoder[ \t]*\([ \t]*\)"
    r"(?P<tail>[ \t]*(?:#[^\n]*)?)$",
    re.MULTILINE,
)
# ``field`` already imported from dataclasses (single-line import).
_FIELD_IMPORTED = re.compile(
    r"^from[ \t]+dataclasses[ \t]+import[ \t]+[^\n(\\]*\bfield\b(?![ \t]+as\b)",
    re.MULTILINE,
)
# A single-line, unparenthesised ``from dataclasses import a, b`` (var_model.py
# line 9: ``from dataclasses import dataclass, InitVar``).
_DATACLASSES_IMPORT = re.compile(
    r"^(?P<stmt>from[ \t]+dataclasses[ \t]+import[ \t]+[^\n(\\#;]*?)"
    r"(?P<tail>[ \t]*(?:#[^\n]*)?)$",
    re.MULTILINE,
)
# First top-level import that is not a __future__ import.
_FIRST_IMPORT = re.compile(
    r"^(?!from[ \t]+__future__\b)(?=(?:import|from)[ \t])", re.MULTILINE
)

_HOOK_MARKER = "_adacal_lava_var_model_hook"
_ENCODERS = ("ByteEncoder", "CoreEncoder", "ChipEncoder", "AxonEncoder")

_lock = threading.Lock()
_state: dict = {"done": False, "patched": False}


def _bug_possible() -> bool:
    # dataclasses rejects unhashable defaults only from Python 3.11 on.
    return sys.version_info >= (3, 11)


def source_has_mutable_default(source: str) -> bool:
    """True if ``source`` still uses ``ByteEncoder()`` instances as defaults."""
    return _BUGGY_DEFAULT.search(source) is not None


def rewrite_var_model_source(source: str) -> str:
    """Return ``source`` with ``= ByteEncoder()`` defaults turned into
    ``= field(default_factory=ByteEncoder)`` and ``field`` imported.

    Source without the pattern is returned unchanged (the very same string).
    The number of lines is preserved, so tracebacks point at the vendor lines.
    """
    if not source_has_mutable_default(source):
        return source
    fixed = _BUGGY_DEFAULT.sub(
        r"\g<head>= field(default_factory=ByteEncoder)\g<tail>", source
    )
    if _FIELD_IMPORTED.search(fixed):
        return fixed
    m = _DATACLASSES_IMPORT.search(fixed)
    if m is not None:
        # ``from dataclasses import dataclass, InitVar`` -> ``..., field``
        return fixed[: m.end("stmt")] + ", field" + fixed[m.end("stmt"):]
    m = _FIRST_IMPORT.search(fixed)
    if m is not None:
        # Same line, so line numbers stay put.
        return fixed[: m.start()] + "from dataclasses import field; " + fixed[m.start():]
    # No plain import at all (not the case in any known Lava): add a line after
    # the __future__ imports, if any (line numbers then shift by one).
    futures = list(re.finditer(r"^from[ \t]+__future__\b[^\n]*\n", fixed, re.MULTILINE))
    pos = futures[-1].end() if futures else 0
    return fixed[:pos] + "from dataclasses import field\n" + fixed[pos:]


class _PatchedSourceLoader(importlib.machinery.SourceFileLoader):
    """Executes the rewritten source under the vendor file's name and path.

    ``get_code`` is overridden, so the vendor ``.pyc`` is neither read (it holds
    the buggy code) nor written.
    """

    def __init__(self, fullname: str, path: str, patched_source: str) -> None:
        super().__init__(fullname, path)
        self._patched_source = patched_source

    def get_code(self, fullname):  # noqa: D401 - importlib API
        return compile(self._patched_source, self.path, "exec", dont_inherit=True)

    def get_source(self, fullname):
        return self._patched_source


class _VarModelFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that fixes ``lava.magma.compiler.var_model`` on load."""

    def __init__(self) -> None:
        setattr(self, _HOOK_MARKER, True)
        self._busy = threading.local()

    def find_spec(self, fullname, path, target=None):
        if fullname != VAR_MODEL_MODULE or not _bug_possible():
            return None
        if getattr(self._busy, "active", False):
            return None
        self._busy.active = True
        try:
            spec = None
            for finder in sys.meta_path:
                if getattr(finder, _HOOK_MARKER, False):
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.active = False
        if spec is None or not spec.has_location or not spec.origin:
            return None
        if not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None  # e.g. sourceless .pyc-only install: leave it alone
        try:
            source = spec.loader.get_source(fullname)
        except (ImportError, OSError):
            return None
        if source is None or not source_has_mutable_default(source):
            return None  # Lava fixed upstream: do nothing
        loader = _PatchedSourceLoader(
            fullname, spec.origin, rewrite_var_model_source(source)
        )
        patched = importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=loader
        )
        # ``__cached__`` still names the vendor .pyc path (ModuleSpec derives
        # it from the origin); it is never read or written for this module.
        return patched


def _installed_hook() -> Optional[object]:
    for finder in sys.meta_path:
        if getattr(finder, _HOOK_MARKER, False):
            return finder
    return None


def _vendor_source_path() -> Optional[str]:
    """Path of var_model.py without importing any Lava module.

    ``lava``, ``lava.magma`` and ``lava.magma.compiler`` are namespace packages
    in lava-nc 0.10.0, so finding ``lava`` imports nothing.
    """
    try:
        spec = importlib.util.find_spec("lava")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for loc in spec.submodule_search_locations or ():
        candidate = os.path.join(loc, "magma", "compiler", "var_model.py")
        if os.path.isfile(candidate):
            return candidate
    return None


def _module_complete(mod) -> bool:
    return all(hasattr(mod, name) for name in _ENCODERS)


LAVA_MP_MODULE = "lava.magma.runtime.message_infrastructure.multiprocessing"


def _import_lava_multiprocessing() -> None:
    """Import Lava's message infrastructure even if the multiprocessing start
    method was already fixed by someone else.

    lava/magma/runtime/message_infrastructure/multiprocessing.py (line 47)
    calls ``mp.set_start_method('fork')`` unforced at import, which raises
    "context has already been set" once anything in the process (torch, a test
    runner, joblib) has asked for the start method.  Lava needs 'fork', so we
    set it ourselves (forced) and let Lava's own call through as a no-op.
    """
    if LAVA_MP_MODULE in sys.modules:
        return
    import multiprocessing as mp

    if mp.get_start_method(allow_none=True) is None:
        importlib.import_module(LAVA_MP_MODULE)  # Lava sets 'fork' itself
        return
    mp.set_start_method("fork", force=True)
    original = mp.set_start_method
    mp.set_start_method = lambda method, force=False: original(method, force=True)
    try:
        importlib.import_module(LAVA_MP_MODULE)
    finally:
        mp.set_start_method = original


def ensure_lava() -> bool:
    """Make ``import lava...`` work on this interpreter.  Idempotent.

    Returns True if the var_model fix is in effect (bug present, hook
    installed), False if Lava needs no help (fixed upstream or Python < 3.11).
    Raises ImportError if lava-nc is not installed or var_model still fails.
    Repeat calls only read a flag.
    """
    if _state["done"]:
        return _state["patched"]
    with _lock:
        if _state["done"]:
            return _state["patched"]
        if importlib.util.find_spec("lava") is None:
            raise ImportError(
                "lava-nc is not installed (pip install --no-deps "
                "--ignore-requires-python lava-nc==0.10.0); it is needed for "
                "the Loihi 2 backend"
            )
        if _bug_possible():
            path = _vendor_source_path()
            if path is None:
                buggy = True  # unusual layout: the finder decides per spec
            else:
                with open(path, "rb") as fh:
                    buggy = source_has_mutable_default(
                        importlib.util.decode_source(fh.read())
                    )
            if buggy:
                if _installed_hook() is None:
                    sys.meta_path.insert(0, _VarModelFinder())
                existing = sys.modules.get(VAR_MODEL_MODULE)
                if existing is not None and not _module_complete(existing):
                    # A partially executed copy (an earlier failed import that
                    # someone kept in sys.modules): discard it so the next
                    # import goes through the hook.  A failed import normally
                    # leaves nothing in sys.modules, and then the hook simply
                    # serves the next import.
                    del sys.modules[VAR_MODEL_MODULE]
                mod = importlib.import_module(VAR_MODEL_MODULE)
                if not _module_complete(mod):
                    raise ImportError(
                        f"{VAR_MODEL_MODULE} loaded without its encoder classes"
                    )
                # After an earlier failed import the namespace parent may lack
                # the attribute; keep ``lava.magma.compiler.var_model`` usable.
                parent = sys.modules.get("lava.magma.compiler")
                if parent is not None and getattr(parent, "var_model", None) is not mod:
                    setattr(parent, "var_model", mod)
        _import_lava_multiprocessing()
        mod = sys.modules.get(VAR_MODEL_MODULE)
        loader = getattr(getattr(mod, "__spec__", None), "loader", None)
        # By name: this file may be executed twice (Lava's model discovery).
        patched = type(loader).__name__ == _PatchedSourceLoader.__name__
        _state["patched"] = patched
        _state["done"] = True
        return patched


def lava_fixed_pt_run_config(**kwargs):
    """``Loihi2SimCfg(select_tag='fixed_pt')`` (bit-accurate CPU models),
    after :func:`ensure_lava`.  Extra keyword arguments go to Loihi2SimCfg."""
    ensure_lava()
    from lava.magma.core.run_configs import Loihi2SimCfg

    return Loihi2SimCfg(select_tag="fixed_pt", **kwargs)
