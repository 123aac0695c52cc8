"""Import Rockpool's XyloSim classes (rockpool 3.1.0) without samna: two
modules on Rockpool's import path import SynSense's driver samna unguarded;
without a real samna they get empty placeholder modules, and Rockpool's own
guards do the rest (docs/xylo.md, "Importing without samna").  No side
effects at import."""
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

#: Rockpool modules that import samna unguarded on the XyloSim import path:
#: syns65302/afe_samna_pdm.py (lines 6, 17; reached from syns65302/__init__.py
#: line 17) and syns63300/power_cycles_model.py (line 7; reached from
#: syns65302/__init__.py line 20).  Every other samna import on the way is in
#: a try/except that installs missing_backend_shim classes.
PLACEHOLDER_MODULES = (
    "rockpool.devices.xylo.syns65302.afe_samna_pdm",
    "rockpool.devices.xylo.syns63300.power_cycles_model",
)

#: adacal device name -> Rockpool device package providing ``XyloSim``
#: (syns65302/__init__.py line 19 re-exports ..syns63300.XyloSim: Audio 3 and
#: IMU share one class).
XYLO_DEVICE_MODULES = {
    "xylo-audio2": "rockpool.devices.xylo.syns61201",
    "xylo-audio3": "rockpool.devices.xylo.syns65302",
    "xylo-imu": "rockpool.devices.xylo.syns63300",
}

_PLACEHOLDER_FLAG = "__adacal_samna_placeholder__"
_lock = threading.Lock()
_state: dict = {"done": False, "placeholders": False}


def samna_available() -> bool:
    """True if a real samna is installed (importable, has ``__version__``:
    the test of rockpool/utilities/backend_management.py
    ``check_samna_available``)."""
    try:
        # the samna PyPI release is a stub that runs pip when imported: import
        # only what find_spec finds (Rockpool would import it here anyway)
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
    # syns61201/__init__.py lines 22-28: XyloSim silently becomes a shim when
    # xylosim (or samna) fails to import
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
