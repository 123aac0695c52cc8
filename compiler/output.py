"""Output directories, written atomically: everything goes into a temporary
sibling directory that is renamed into place at the end, so a failure never
leaves a half-written artifact.  An existing directory is replaced only if it
is an adacal output and --force is given."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from adacal.errors import AdacalError

MANIFEST = "manifest.json"


def is_adacal_output(path: Path) -> bool:
    try:
        with open(path / MANIFEST) as f:
            return str(json.load(f).get("format", "")).startswith("adacal")
    except (OSError, ValueError, AttributeError):
        return False


def check_output_dir(path, force: bool) -> None:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise AdacalError(f"output {p} exists and is not a directory")
    if p.is_dir() and any(p.iterdir()):
        if not is_adacal_output(p):
            raise AdacalError(f"output directory {p} exists and is not an adacal output; "
                              "choose another path or empty it")
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
    """files: name -> dict (JSON), str (text), bytes, or a callable(path) that writes it."""
    p = Path(path)
    check_output_dir(p, force)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.tmp-", dir=p.parent))
    try:
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
        old = None
        if p.exists():
            old = p.parent / f".{p.name}.old-{os.getpid()}"
            p.rename(old)
        tmp.rename(p)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return p
