"""Data: what DATA / CAL / VAL may be, read in batches.

- a `.npz` with `x` (N, *input shape) and optional `y` (loaded whole);
- a bare `.npy` holding `x`;
- a directory holding `x.npy` and optionally `y.npy`: x is memory-mapped and
  read batch by batch, so a data set larger than memory can be streamed;
- (Python) an array x, a pair (x, y), or any iterable of batches `(x, y)` or
  `x`, such as a torch DataLoader.  A re-iterable one (a list, a DataLoader)
  is read afresh on every pass; a one-shot iterator (a generator) is read
  once into memory.

y is either class labels — integers, or whole-number floats, of shape (N,) —
returned as int64 (N,), or regression targets — floats of shape (N, *output
shape) — returned as float32 (N, *output shape).  Accuracy is measured only
against labels (adacal.summary.has_labels); docs/method.md, "Output error".
Labels and targets are small and always held in memory; x is validated (shape,
dtype, finite values) as it is read.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from adacal.errors import AdacalError

#: samples per batch when nobody says (--batch-size)
DEFAULT_BATCH_SIZE = 256


@dataclass
class Samples:
    """N samples of one data source, read in batches as float32.

    Array-backed (an array, a memory map) or a re-iterable of batches.  x is
    checked for finite values as it is read; the error names the source and
    the samples."""
    where: str
    n: int
    sample_shape: tuple
    y: np.ndarray | None
    _x: object = None  # ndarray / np.memmap, or a re-iterable of batches
    _iterable: bool = False
    #: the file or directory read (None for data given in Python)
    source: str | None = None

    def __len__(self) -> int:
        return self.n

    def _checked(self, xb, start: int) -> np.ndarray:
        xb = np.asarray(xb)
        if xb.dtype.kind not in "fiub":
            raise AdacalError(f"{self.where}: x has dtype {xb.dtype}, expected numbers")
        xb = np.ascontiguousarray(xb, np.float32)
        if not xb.flags.writeable:  # a memory map's rows: torch wants its own copy
            xb = xb.copy()
        bad = ~np.isfinite(xb.reshape(len(xb), -1)).all(axis=1)
        if bad.any():
            raise AdacalError(f"{self.where}: x contains NaN or Inf (sample {start + int(np.argmax(bad))})")
        return xb

    def _stream(self) -> Iterator[tuple[int, np.ndarray]]:
        """(start, batch) of the underlying iterable, in order."""
        start = 0
        for item in self._x:
            xb = _batch_x(item)
            yield start, xb
            start += len(xb)
        if start != self.n:
            raise AdacalError(f"{self.where}: the iterable gave {start} samples on this pass, "
                              f"{self.n} on the first (it must give the same samples every time)")

    def batches(self, batch_size: int = DEFAULT_BATCH_SIZE, idx=None) -> Iterator[np.ndarray]:
        """The samples (all, or those at the sorted indices idx) in batches of
        batch_size, in order."""
        bs = max(int(batch_size), 1)
        if not self._iterable:
            if idx is None:
                for s in range(0, self.n, bs):
                    yield self._checked(self._x[s:s + bs], s)
            else:
                idx = np.asarray(idx)
                for s in range(0, len(idx), bs):
                    part = idx[s:s + bs]
                    yield self._checked(self._x[part], int(part[0]) if len(part) else 0)
            return
        want = None if idx is None else np.asarray(idx)
        pending, got = [], 0
        pos = 0  # next wanted index in want
        for start, xb in self._stream():
            if want is not None:
                stop = start + len(xb)
                hi = np.searchsorted(want, stop)
                sel = want[pos:hi] - start
                pos = hi
                xb = xb[sel]
            if len(xb) == 0:
                continue
            pending.append(self._checked(xb, start))
            got += len(xb)
            while got >= bs:
                cat = np.concatenate(pending)
                yield cat[:bs]
                pending, got = ([cat[bs:]] if len(cat) > bs else []), len(cat) - bs
        if got:
            yield np.concatenate(pending)

    def take(self, idx) -> np.ndarray:
        """The samples at the sorted indices idx, in memory (small subsets)."""
        idx = np.asarray(idx)
        if len(idx) == 0:
            return np.zeros((0,) + tuple(self.sample_shape), np.float32)
        return np.concatenate(list(self.batches(max(len(idx), 1), idx)))

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Samples start .. stop - 1, in memory."""
        return self.take(np.arange(start, min(stop, self.n)))

    def array(self) -> np.ndarray:
        """All of x in memory."""
        return self.take(np.arange(self.n))


@dataclass
class Subset:
    """The samples of `parent` at the sorted indices idx (the calibration
    samples picked from a calibration file), read in batches."""
    parent: Samples
    idx: np.ndarray

    def __len__(self) -> int:
        return len(self.idx)

    @property
    def y(self):
        return None if self.parent.y is None else self.parent.y[self.idx]

    def batches(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[np.ndarray]:
        return self.parent.batches(batch_size, self.idx)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Samples start .. stop - 1 of the subset, in memory."""
        return self.parent.take(self.idx[start:stop])

    def array(self) -> np.ndarray:
        return self.parent.take(self.idx)


def _batch_x(item):
    if isinstance(item, (tuple, list)) and len(item) == 2:
        item = item[0]
    return _numpy(item)


def _numpy(a):
    if hasattr(a, "detach"):  # a torch tensor (on any device)
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def open_data(data, input_shape=None, num_classes: int | None = None, what: str = "data",
              output_shape=None) -> Samples:
    """data (a path, an array, a pair (x, y) or an iterable of batches) as
    Samples validated against the model (shape, dtype, labels or targets)."""
    if isinstance(data, Samples):
        return data
    if isinstance(data, (str, os.PathLike)):
        return _open_path(os.fspath(data), input_shape, num_classes, what, output_shape)
    if isinstance(data, tuple) and len(data) == 2 and not _is_batches(data):
        x, y = data
        return _from_arrays(_array(x, what), None if y is None else _array(y, what), input_shape, num_classes,
                            what, output_shape)
    if _is_batches(data):
        return _from_iterable(data, input_shape, num_classes, what, output_shape)
    return _from_arrays(_array(data, what), None, input_shape, num_classes, what, output_shape)


def _array(a, what):
    try:
        return _numpy(a)
    except (TypeError, ValueError) as e:
        raise AdacalError(f"{what}: not an array x, a pair (x, y) or an iterable of batches ({e})") from None


def _is_batches(data) -> bool:
    """An iterable of batches (not an array, not a pair of arrays)."""
    if isinstance(data, np.ndarray) or hasattr(data, "detach") or isinstance(data, (str, bytes)):
        return False
    if isinstance(data, tuple) and len(data) == 2:
        # (x, y) arrays, or two batches? two batches have the same kind of items
        return all(isinstance(p, (tuple, list)) for p in data)
    if isinstance(data, list):
        return len(data) > 0 and all(isinstance(p, (tuple, list)) or hasattr(p, "detach")
                                     or (isinstance(p, np.ndarray) and p.ndim >= 2) for p in data) \
            and not all(np.isscalar(p) for p in data)
    return hasattr(data, "__iter__")


def _open_path(path, input_shape, num_classes, what, output_shape) -> Samples:
    if not os.path.exists(path):
        raise AdacalError(f"{what} file {path}: no such file or directory")
    if os.path.isdir(path):
        return _open_dir(path, input_shape, num_classes, what, output_shape)
    if not os.path.isfile(path):  # a FIFO or device
        raise AdacalError(f"{what} file {path}: not a regular file")
    try:
        if path.endswith(".npy"):
            x, y = np.load(path, allow_pickle=False), None
        else:
            f = np.load(path, allow_pickle=False)
            if not hasattr(f, "files"):  # an .npy array under another name
                raise AdacalError(f"{what} file {path}: a .npy array, not a .npz archive with x (and y): "
                                  "name it .npy")
            with f:
                if "x" not in f.files:
                    raise AdacalError(f"{what} file {path}: has no array 'x' (found {', '.join(f.files) or 'nothing'})")
                x = f["x"]
                y = f["y"] if "y" in f.files else None
    except AdacalError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError) as e:
        # ValueError also covers pickled (object) arrays, refused by allow_pickle=False;
        # zlib.error / BadZipFile a damaged compressed member
        raise AdacalError(f"{what} file {path}: not a readable .npz/.npy file ({_first_line(e)})") from None
    s = _from_arrays(x, y, input_shape, num_classes, f"{what} file {path}", output_shape)
    s.source = path
    return s


def _open_dir(path, input_shape, num_classes, what, output_shape) -> Samples:
    where = f"{what} directory {path}"
    xf, yf = os.path.join(path, "x.npy"), os.path.join(path, "y.npy")
    if not os.path.isfile(xf):
        found = ", ".join(sorted(os.listdir(path))[:8]) or "nothing"
        raise AdacalError(f"{where}: has no x.npy (found {found}); a data directory holds x.npy and optionally y.npy")
    try:
        x = np.load(xf, mmap_mode="r", allow_pickle=False)
        y = np.load(yf, allow_pickle=False) if os.path.isfile(yf) else None
    except (ValueError, OSError, EOFError) as e:
        raise AdacalError(f"{where}: not readable .npy files ({_first_line(e)})") from None
    s = _from_arrays(x, y, input_shape, num_classes, where, output_shape)
    s.source = path
    return s


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _check_x(shape, dtype, input_shape, where: str) -> None:
    if dtype.kind not in "fiub":
        raise AdacalError(f"{where}: x has dtype {dtype}, expected numbers")
    if len(shape) < 2 or shape[0] == 0:
        raise AdacalError(f"{where}: x has shape {tuple(shape)}, expected (N, *input shape) with N > 0")
    if input_shape is not None and tuple(shape[1:]) != tuple(input_shape):
        raise AdacalError(f"{where}: x has per-sample shape {tuple(shape[1:])}, "
                          f"the model expects {tuple(input_shape)}")


def _from_arrays(x, y, input_shape, num_classes, where, output_shape) -> Samples:
    _check_x(x.shape, x.dtype, input_shape, where)
    y = _labels(y, len(x), num_classes, where, output_shape)
    s = Samples(where, len(x), tuple(x.shape[1:]), y, x, False)
    if not isinstance(x, np.memmap):  # in memory already: check it now, before any work
        s._x = s._checked(x, 0)
    return s


def _from_iterable(data, input_shape, num_classes, what, output_shape) -> Samples:
    """Count (and validate) the batches once; keep y.  A one-shot iterator is
    kept in memory."""
    one_shot = iter(data) is data
    xs, ys, n, shape, dtype = [], [], 0, None, None
    has_y = None
    for i, item in enumerate(data):
        pair = isinstance(item, (tuple, list)) and len(item) == 2
        xb = _numpy(item[0] if pair else item)
        yb = _numpy(item[1]) if pair and item[1] is not None else None
        if has_y is None:
            has_y = yb is not None
        if (yb is not None) != has_y:
            raise AdacalError(f"{what}: batch {i} has {'no ' if has_y else ''}labels, batch 0 "
                              f"{'has' if has_y else 'has none'}")
        if xb.ndim < 2:
            raise AdacalError(f"{what}: batch {i} has shape {xb.shape}, expected (batch, *input shape)")
        if shape is None:
            shape, dtype = tuple(xb.shape[1:]), xb.dtype
        elif tuple(xb.shape[1:]) != shape:
            raise AdacalError(f"{what}: batch {i} has per-sample shape {tuple(xb.shape[1:])}, "
                              f"batch 0 {shape}")
        if yb is not None:
            if len(yb) != len(xb):
                raise AdacalError(f"{what}: batch {i} has {len(yb)} labels for {len(xb)} samples")
            ys.append(yb)
        if one_shot:
            xs.append(xb)
        n += len(xb)
    if shape is None:
        raise AdacalError(f"{what}: the iterable gave no batches")
    _check_x((n,) + shape, dtype, input_shape, what)
    y = np.concatenate(ys) if has_y else None
    if one_shot:
        return _from_arrays(np.concatenate(xs), y, input_shape, num_classes, what, output_shape)
    return Samples(what, n, shape, _labels(y, n, num_classes, what, output_shape), data, True)


def load_data(path, input_shape=None, num_classes: int | None = None, what: str = "data", output_shape=None):
    """Return (x float32, y int64 labels, float32 targets or None), validated
    against the model, all in memory."""
    s = open_data(os.fspath(path), input_shape, num_classes, what, output_shape)
    return s.array(), s.y


def as_data(data, input_shape=None, num_classes: int | None = None, what: str = "data", output_shape=None):
    """data as (x float32, y int64 labels, float32 targets or None) in
    memory, validated against the model: anything open_data takes.
    output_shape (per sample) says which float y are targets; without it,
    float y with num_classes values per sample are."""
    s = open_data(data, input_shape, num_classes, what, output_shape)
    return s.array(), s.y


def _labels(y, n: int, num_classes, where: str, output_shape=None):
    if y is None:
        return None
    y = np.asarray(y)
    if _is_targets(y, n, num_classes, output_shape):
        return _targets(y, n, num_classes, output_shape, where)
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        shape = "(N, *output shape)" if output_shape is None else f"(N, {', '.join(map(str, output_shape))})"
        raise AdacalError(f"{where}: y has dtype {y.dtype} and shape {y.shape}, expected integer labels (N,) "
                          f"or float regression targets {shape}")
    y = y.astype(np.int64).reshape(-1)
    if len(y) != n:
        raise AdacalError(f"{where}: {len(y)} labels for {n} samples")
    if num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
        raise AdacalError(f"{where}: labels must be in 0..{num_classes - 1} "
                          f"(the model has {num_classes} outputs), found {y.min()}..{y.max()}")
    return y
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
