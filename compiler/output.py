"""Output directories, written atomically: everything goes into a temporary
sibling directory that is renamed into place at the end, so a failure never
leaves a half-written artifact.  An existing directory is replaced only if it
is an adacal output holding nothing but adacal's files, and --force is given:
a user's own directory, or a user's file put into an adacal output, is never
deleted."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from adacal.errors import AdacalError

MANIFEST = "manifest.json"

#: Files the commands write (a compiled artifact also lists its files in the
#: manifest's "files"); anything else in an output directory is the user's.
OUTPUT_FILES = frozenset({MANIFEST, "report.json", "report.html", "network.txt", "network.nir", "network.h5",
                          "xylo_spec.npz", "xylo_spec.json", "ann.onnx"})


def _manifest(path: Path) -> dict | None:
    try:
        with open(path / MANIFEST) as f:
            man = json.load(f)
    except (OSError, ValueError):
        return None
    return man if isinstance(man, dict) else None


def is_adacal_output(path: Path) -> bool:
    man = _manifest(Path(path))
    return man is not None and str(man.get("format", "")).startswith("adacal")


def _foreign_entries(path: Path) -> list[str]:
    """What an adacal output directory holds that adacal did not write."""
    files = _manifest(path).get("files", [])
    known = OUTPUT_FILES | {str(f) for f in files} if isinstance(files, list) else OUTPUT_FILES
    return sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir()
                  if p.name not in known or not p.is_file())


def check_output_dir(path, force: bool) -> None:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise AdacalError(f"output {p} exists and is not a directory")
    if not p.exists():
        parent = p.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise AdacalError(f"cannot create output directory {p}: {parent} is a file, not a directory")
        return
    if any(p.iterdir()):
        if not is_adacal_output(p):
            raise AdacalError(f"output directory {p} exists and is not an adacal output; "
                              "choose another path or empty it")
        foreign = _foreign_entries(p)
        if foreign:
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise AdacalError(f"output directory {p} is an adacal output that also holds files adacal did not "
                              f"write ({', '.join(foreign[:3])}{more}); it is not replaced, even with --force")
        if not force:
            raise AdacalError(f"output directory {p} exists; use --force to replace it")


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, default=_default, sort_keys=False) + "\n"


def write_output_dir(path, files: dict, force: bool = False) -> Path:
    """files: name -> dict (JSON), str (text), bytes, or a callable(path) that writes it.

    On any failure nothing is left behind: the temporary directory and any
    parent directories this call created are removed, and a directory being
    replaced (--force) is restored.  OS errors (disk full, permissions)
    become an AdacalError naming the output."""
    p = Path(path)
    check_output_dir(p, force)
    created = []
    parent = p.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    tmp = old = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.tmp-", dir=p.parent))
        for name, content in files.items():
            target = tmp / name
            if callable(content):
                content(target)
            elif isinstance(content, (dict, list)):
                target.write_text(dumps(content))
            elif isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(str(content))
        if p.exists():
            old = p.parent / f".{p.name}.old-{os.getpid()}"
            p.rename(old)
        tmp.rename(p)
        tmp = None
    except BaseException as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None and not p.exists():
                old.rename(p)  # put the replaced output back
                old = None
        for d in created:  # innermost first; only if still empty
            try:
                d.rmdir()
            except OSError:
                break
        if isinstance(e, OSError):
            raise AdacalError(f"cannot write output directory {p}: {e.strerror or e}") from None
        raise
    finally:
        if old is not None and old.exists() and p.exists():
            shutil.rmtree(old, ignore_errors=True)
    return p
