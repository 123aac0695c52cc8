"""Data: `.npz` files with `x` (N, *input shape) and optional `y` (N,) integer
labels, a bare `.npy` holding `x`, or (Python) an array x or a pair (x, y)."""
from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from adacal.errors import AdacalError


def load_data(path, input_shape=None, num_classes: int | None = None, what: str = "data"):
    """Return (x float32, y int64 or None), validated against the model."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AdacalError(f"{what} file {path}: no such file")
    if not os.path.isfile(path):  # a directory, FIFO or device
        raise AdacalError(f"{what} file {path}: not a regular file")
    try:
        if path.endswith(".npy"):
            x, y = np.load(path, allow_pickle=False), None
        else:
            with np.load(path, allow_pickle=False) as f:
                if "x" not in f.files:
                    raise AdacalError(f"{what} file {path}: has no array 'x' (found {', '.join(f.files) or 'nothing'})")
                x = f["x"]
                y = f["y"] if "y" in f.files else None
    except AdacalError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError) as e:
        # ValueError also covers pickled (object) arrays, refused by allow_pickle=False;
        # zlib.error / BadZipFile a damaged compressed member
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AdacalError(f"{what} file {path}: not a readable .npz/.npy file ({first})") from None
    return _validate(x, y, input_shape, num_classes, f"{what} file {path}")


def as_data(data, input_shape=None, num_classes: int | None = None, what: str = "data"):
    """data as (x float32, y int64 or None), validated against the model:
    a .npz / .npy path, an array x, or a pair (x, y)."""
    if isinstance(data, (str, os.PathLike)):
        return load_data(data, input_shape, num_classes, what)
    x, y = data if isinstance(data, tuple) and len(data) == 2 else (data, None)
    try:
        x = np.asarray(x)
        y = None if y is None else np.asarray(y)
    except (TypeError, ValueError) as e:
        raise AdacalError(f"{what}: not an array x or a pair (x, y) ({e})") from None
    return _validate(x, y, input_shape, num_classes, what)


def _validate(x: np.ndarray, y, input_shape, num_classes, where: str):
    if x.dtype.kind not in "fiub":
        raise AdacalError(f"{where}: x has dtype {x.dtype}, expected numbers")
    x = x.astype(np.float32, copy=False)
    if x.ndim < 2 or len(x) == 0:
        raise AdacalError(f"{where}: x has shape {x.shape}, expected (N, *input shape) with N > 0")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise AdacalError(f"{where}: x has per-sample shape {tuple(x.shape[1:])}, "
                          f"the model expects {tuple(input_shape)}")
    if not np.all(np.isfinite(x)):
        raise AdacalError(f"{where}: x contains NaN or Inf")
    if y is not None:
        if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
            raise AdacalError(f"{where}: y has dtype {y.dtype}, expected integer labels")
        y = y.astype(np.int64).reshape(-1)
        if len(y) != len(x):
            raise AdacalError(f"{where}: {len(y)} labels for {len(x)} samples")
        if num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
            raise AdacalError(f"{where}: labels must be in 0..{num_classes - 1} "
                              f"(the model has {num_classes} outputs), found {y.min()}..{y.max()}")
    return x, y
