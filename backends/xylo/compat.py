"""Import Rockpool's XyloSim classes (rockpool 3.1.0) without samna.

``import rockpool.devices.xylo.<anything>`` first runs
``rockpool/devices/xylo/__init__.py`` (lines 34-36), which imports all three
device packages.  Two modules on that path import SynSense's hardware driver
``samna`` without a guard:

* ``rockpool/devices/xylo/syns65302/afe_samna_pdm.py`` lines 6 and 17
  (``import samna`` / ``from samna.xyloAudio3.configuration import ...``),
  reached from ``syns65302/__init__.py`` line 17 (``from .afe_samna_pdm import *``);
* ``rockpool/devices/xylo/syns63300/power_cycles_model.py`` line 7
  (``import samna``), reached from ``syns65302/__init__.py`` line 20
  (``from ..syns63300.power_cycles_model import *``).

Every other samna import on the way is inside a ``try/except`` that installs
``missing_backend_shim`` classes: ``xylo/__init__.py`` lines 38-47
(``helper.py``), ``syns61201/__init__.py`` lines 38-57, ``syns63300/__init__.py``
lines 29-51, ``syns65302/__init__.py`` lines 22-44.  (Checked by importing all
three XyloSim classes with only the two placeholders below and no ``samna`` in
``sys.modules`` afterwards.)

Without a real samna we register an empty placeholder module under exactly
those two names before the import; the ``*``-imports then import nothing, and
the guarded blocks fall back to their shims as Rockpool intends.  With a real
samna (importable and exposing ``__version__``, the same test as Rockpool's
``rockpool/utilities/backend_management.py`` ``check_samna_available``) we do
nothing.  The samna PyPI release is a stub that runs ``pip`` when imported, so
samna is imported only if ``importlib.util.find_spec`` finds it at all (Rockpool
itself imports it at that point anyway).

Note: ``syns65302/__init__.py`` line 19 re-exports ``..syns63300.XyloSim``, so
Xylo Audio 3 and Xylo IMU share one simulator class.  XyloSim also silently
becomes a ``missing_backend_shim`` when ``xylosim`` fails to import
(``syns61201/__init__.py`` lines 22-28: the check needs both xylosim *and*
samna); :func:`xylosim_class` detects that and raises a real error.

No side effects at import.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types

__all__ = [
    "PLACEHOLDER_MODULES",
    "XYLO_DEVICE_MODULES",
    "ensure_rockpool_xylo",
    "samna_available",
    "xylosim_class",
]

#: Rockpool modules that import samna unguarded on the XyloSim import path.
PLACEHOLDER_MODULES = (
    "rockpool.devices.xylo.syns65302.afe_samna_pdm",
    "rockpool.devices.xylo.syns63300.power_cycles_model",
)

#: adacal device name -> Rockpool device package providing ``XyloSim``.
XYLO_DEVICE_MODULES = {
    "xylo-audio2": "rockpool.devices.xylo.syns61201",
    "xylo-audio3": "rockpool.devices.xylo.syns65302",
    "xylo-imu": "rockpool.devices.xylo.syns63300",
}

_PLACEHOLDER_FLAG = "__adacal_samna_placeholder__"
_lock = threading.Lock()
_state: dict = {"done": False, "placeholders": False}


def samna_available() -> bool:
    """True if a real samna is installed (importable, has ``__version__``)."""
    try:
        if importlib.util.find_spec("samna") is None:
            return False
        import samna  # noqa: F401  (only reached when something is installed)

        return hasattr(samna, "__version__")
    except Exception:  # a broken or uninstalled-leftover samna
        return False


def _placeholder(name: str) -> types.ModuleType:
    mod = types.ModuleType(
        name,
        "adacal placeholder: the real module imports samna, which is not "
        "installed; see adacal.backends.xylo.compat.",
    )
    mod.__all__ = []
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None, origin="adacal-placeholder")
    setattr(mod, _PLACEHOLDER_FLAG, True)
    return mod


def ensure_rockpool_xylo() -> bool:
    """Make ``from rockpool.devices.xylo.<device> import XyloSim`` work
    without samna.  Idempotent and cheap on repeat calls.

    Returns True if placeholder modules are in use (no real samna), False if
    a real samna is installed and nothing was changed.  Raises ImportError if
    Rockpool is not installed.
    """
    if _state["done"]:
        return _state["placeholders"]
    with _lock:
        if _state["done"]:
            return _state["placeholders"]
        if importlib.util.find_spec("rockpool") is None:
            raise ImportError(
                "rockpool is not installed (pip install rockpool==3.1.0 "
                "xylosim==0.1.3); it is needed for the Xylo backend"
            )
        placeholders = False
        if not samna_available():
            for name in PLACEHOLDER_MODULES:
                existing = sys.modules.get(name)
                if existing is None:
                    sys.modules[name] = _placeholder(name)
                # else: a module already loaded under that name (it imported
                # fine, or it is our placeholder): keep it.
            placeholders = True
            # A failed earlier import of rockpool.devices.xylo leaves nothing
            # of the failing chain in sys.modules (each failing module is
            # removed), so the next import simply runs again.
        _state["placeholders"] = placeholders
        _state["done"] = True
        return placeholders


def _is_missing_backend_shim(cls) -> bool:
    # rockpool/utilities/backend_management.py missing_backend_shim(): a class
    # named MissingBackendShim whose metaclass raises on attribute access.
    return type(cls).__name__ == "MBSMeta" or cls.__name__ == "MissingBackendShim"


def xylosim_class(device: str):
    """The Rockpool ``XyloSim`` class for ``device`` ("xylo-audio2",
    "xylo-audio3" or "xylo-imu"), backed by xylosim (no samna needed).

    Raises ValueError for an unknown device and ImportError if the simulator
    cannot be used (xylosim missing or broken).
    """
    try:
        module_name = XYLO_DEVICE_MODULES[device]
    except KeyError:
        raise ValueError(
            f"unknown Xylo device {device!r}; expected one of "
            f"{', '.join(sorted(XYLO_DEVICE_MODULES))}"
        ) from None
    ensure_rockpool_xylo()
    module = importlib.import_module(module_name)
    cls = getattr(module, "XyloSim", None)
    if cls is None or _is_missing_backend_shim(cls):
        # Rockpool hides the reason; import xylosim ourselves to show it.
        try:
            importlib.import_module("xylosim.v2")
        except Exception as exc:
            raise ImportError(
                f"XyloSim for {device} needs the 'xylosim' package "
                f"(pip install xylosim==0.1.3): {exc}"
            ) from exc
        raise ImportError(
            f"{module_name}.XyloSim is unavailable although xylosim imports; "
            "the Rockpool install is broken"
        )
    return cls
