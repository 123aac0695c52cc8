#!/usr/bin/env python3
"""Train a Xylo-sized MLP on scikit-learn's digits and export it to ONNX.

    python examples/digits16_mlp.py [--out examples/out] [--seed 0]

Xylo has 16 input channels, so the 8x8 digits are average-pooled to 4x4
(16 features in [0, 1]); the MLP is 16-64-10.  Writes into --out:
digits16_mlp.onnx, digits16_calib.npz (training split: x, y) and
digits16_test.npz.  Deterministic; the data ships with scikit-learn.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


def load_data(seed: int = 0, test_size: int = 450):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32).reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(x))
    te, tr = np.sort(idx[:test_size]), np.sort(idx[test_size:])
    return x[tr], y[tr], x[te], y[te]


def train(seed: int = 0, epochs: int = 300, sizes: tuple[int, ...] = (16, 64, 10), lr: float = 1e-2):
    """A ReLU MLP of layer widths `sizes` on load_data's training split:
    full-batch Adam, seeded, one torch thread, deterministic algorithms.
    (model, (x_tr, y_tr, x_te, y_te), test accuracy)"""
    x_tr, y_tr, x_te, y_te = load_data(seed)
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
        for _ in range(epochs):  # full batch: ~1 s
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x_te)).argmax(1).numpy() == y_te).mean())
    return model, (x_tr, y_tr, x_te, y_te), acc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="examples/out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, (x_tr, y_tr, x_te, y_te), acc = train(args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 16),), str(out / "digits16_mlp.onnx"), dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    np.savez(out / "digits16_calib.npz", x=x_tr, y=y_tr)
    np.savez(out / "digits16_test.npz", x=x_te, y=y_te)
    print(f"digits16 MLP: test accuracy {100 * acc:.2f} %; wrote {out}/digits16_mlp.onnx")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
