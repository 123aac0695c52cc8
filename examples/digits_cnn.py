#!/usr/bin/env python3
"""Train a small CNN on scikit-learn's 8x8 digits and export it to ONNX.

    python examples/digits_cnn.py [--out examples/out] [--seed 0] [--epochs 40]

Writes into --out:
  digits_cnn.onnx    classic (TorchScript) exporter, opset 17, dynamic batch
                     (input "input" (N,1,8,8) float32 in [0,1], output "logits" (N,10))
  digits_calib.npz   x: training images float32 (N,1,8,8), y: labels int64
  digits_test.npz    x, y of the held-out test split

Everything is deterministic: the same seed gives byte-identical ONNX files.
The data ships with scikit-learn (nothing is downloaded).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 10


def load_data(seed: int = 0):
    """Digits scaled to [0,1], stratified 75/25 split with `seed`.

    Returns (x_train, y_train, x_test, y_test); x float32 (N,1,8,8), y int64.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32).reshape(-1, *INPUT_SHAPE)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    return (np.ascontiguousarray(x_tr), np.ascontiguousarray(y_tr),
            np.ascontiguousarray(x_te), np.ascontiguousarray(y_te))


def build_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),               # 8x8x8
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),  # 16x4x4
        nn.AvgPool2d(2),                                                           # 16x2x2
        nn.Flatten(),
        nn.Linear(16 * 2 * 2, NUM_CLASSES),
    )


class _deterministic:
    """Seed torch, force deterministic kernels and one thread; restore on exit.

    Restoring matters when train() is imported (e.g. by a test) rather than
    run as a script: the caller keeps its own thread count and settings.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        self.saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
        torch.manual_seed(self.seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        threads, det = self.saved
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        return False


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


def train(seed: int = 0, epochs: int = 40, batch_size: int = 64, lr: float = 1e-2, data=None):
    """Train the CNN; returns (model in eval mode, data tuple, test accuracy)."""
    with _deterministic(seed):
        return _train(seed, epochs, batch_size, lr, data)


def _train(seed, epochs, batch_size, lr, data):
    data = data if data is not None else load_data(seed)
    x_tr, y_tr, x_te, y_te = data
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one sample
                continue
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()
    model.eval()
    return model, data, accuracy(model, x_te, y_te)


def export(model: nn.Module, out_dir, data, opset: int = 17) -> dict[str, Path]:
    """Write digits_cnn.onnx, digits_calib.npz and digits_test.npz into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr, x_te, y_te = data
    paths = {
        "onnx": out / "digits_cnn.onnx",
        "calib": out / "digits_calib.npz",
        "test": out / "digits_test.npz",
    }
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy-exporter deprecation notice
        with torch.no_grad():
            torch.onnx.export(
                model,
                (torch.zeros((1, *INPUT_SHAPE)),),
                str(paths["onnx"]),
                dynamo=False,
                export_params=True,
                opset_version=opset,
                do_constant_folding=True,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            )
    np.savez(paths["calib"], x=x_tr, y=y_tr)
    np.savez(paths["test"], x=x_te, y=y_te)
    return paths


def onnxruntime_accuracy(onnx_path, x: np.ndarray, y: np.ndarray) -> float | None:
    """Test accuracy of the exported file under onnxruntime (None if not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return float((logits.argmax(1) == y).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("examples", "out"), help="output directory (default: examples/out)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    model, data, acc = train(seed=args.seed, epochs=args.epochs)
    t1 = time.perf_counter()
    paths = export(model, args.out, data)
    _, _, x_te, y_te = data
    ort_acc = onnxruntime_accuracy(paths["onnx"], x_te, y_te)
    print(f"trained in {t1 - t0:.1f}s: test accuracy {acc:.4f} ({len(y_te)} images)")
    if ort_acc is not None:
        print(f"onnxruntime test accuracy {ort_acc:.4f}")
    for p in paths.values():
        print(f"wrote {p}")
    if ort_acc is not None and ort_acc != acc:
        print(f"error: onnxruntime accuracy {ort_acc:.4f} != torch accuracy {acc:.4f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
