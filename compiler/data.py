"""Data: `.npz` files with `x` (N, *input shape) and optional `y`, a bare
`.npy` holding `x`, or (Python) an array x or a pair (x, y).

y is either class labels — integers, or whole-number floats, of shape (N,) —
returned as int64 (N,), or regression targets — floats of shape (N, *output
shape) — returned as float32 (N, *output shape).  Accuracy is measured only
against labels (adacal.summary.has_labels); docs/method.md, "Output error"."""
from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from adacal.errors import AdacalError


def load_data(path, input_shape=None, num_classes: int | None = None, what: str = "data", output_shape=None):
    """Return (x float32, y int64 labels, float32 targets or None), validated
    against the model."""
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
    return _validate(x, y, input_shape, num_classes, f"{what} file {path}", output_shape)


def as_data(data, input_shape=None, num_classes: int | None = None, what: str = "data", output_shape=None):
    """data as (x float32, y int64 labels, float32 targets or None),
    validated against the model: a .npz / .npy path, an array x, or a pair
    (x, y).  output_shape (per sample) says which float y are targets;
    without it, float y with num_classes values per sample are."""
    if isinstance(data, (str, os.PathLike)):
        return load_data(data, input_shape, num_classes, what, output_shape)
    x, y = data if isinstance(data, tuple) and len(data) == 2 else (data, None)
    try:
        x = np.asarray(x)
        y = None if y is None else np.asarray(y)
    except (TypeError, ValueError) as e:
        raise AdacalError(f"{what}: not an array x or a pair (x, y) ({e})") from None
    return _validate(x, y, input_shape, num_classes, what, output_shape)


def _validate(x: np.ndarray, y, input_shape, num_classes, where: str, output_shape=None):
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
    if y is not None and _is_targets(y, len(x), num_classes, output_shape):
        return x, _targets(y, len(x), num_classes, output_shape, where)
    if y is not None:
        if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
            shape = "(N, *output shape)" if output_shape is None else f"(N, {', '.join(map(str, output_shape))})"
            raise AdacalError(f"{where}: y has dtype {y.dtype} and shape {y.shape}, expected integer labels (N,) "
                              f"or float regression targets {shape}")
        y = y.astype(np.int64).reshape(-1)
        if len(y) != len(x):
            raise AdacalError(f"{where}: {len(y)} labels for {len(x)} samples")
        if num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
            raise AdacalError(f"{where}: labels must be in 0..{num_classes - 1} "
                              f"(the model has {num_classes} outputs), found {y.min()}..{y.max()}")
    return x, y


def _is_targets(y: np.ndarray, n: int, num_classes, output_shape) -> bool:
    """Float y other than whole-number labels of shape (N,): regression
    targets (validated by _targets)."""
    if y.dtype.kind != "f":
        return False
    if y.ndim == 1 and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return False  # whole numbers (N,): labels, as always
    if y.ndim >= 2:
        return True
    # (N,) non-whole floats: targets of a model with one output
    return (output_shape is not None and int(np.prod(output_shape)) == 1) or num_classes == 1


def _targets(y: np.ndarray, n: int, num_classes, output_shape, where: str) -> np.ndarray:
    """Regression targets y as float32 (N, *output shape)."""
    if len(y) != n:
        raise AdacalError(f"{where}: {len(y)} targets for {n} samples")
    per = tuple(y.shape[1:])
    if output_shape is not None:
        want = tuple(int(d) for d in output_shape)
        if per != want and not (per == () and want in ((1,), ())):
            raise AdacalError(f"{where}: y (regression targets) has per-sample shape {per}, "
                              f"the model's output is {want}")
        y = y.reshape((n,) + want)
    elif num_classes is not None and int(np.prod(per)) != num_classes:
        raise AdacalError(f"{where}: y (regression targets) has {int(np.prod(per))} values per sample, "
                          f"the model has {num_classes} outputs")
    if not np.all(np.isfinite(y)):
        raise AdacalError(f"{where}: y contains NaN or Inf")
    return y.astype(np.float32, copy=False)
