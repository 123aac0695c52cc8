"""Where the float stages run: `--device cpu|cuda|cuda:N|mps`.

The ANN interpreter, the float SNN simulator's synapses (convolutions,
dense layers, pooling) and the Loihi 2 integer simulator's synaptic sums run
on the chosen torch device; the burst neurons' step loop and the max-pool
realisations run in numpy on the host, so every neuron layer's input comes
back to the host once per simulation.  The Xylo simulator (small networks,
int8 matmuls per step) stays on the host.  The default is the CPU.

Results: the integer engines compute exact integer sums, so their results are
the same on every device (TF32, which would round them, is switched off on
CUDA while adacal runs; on MPS, which has no float64, sums that need float64
stay on the CPU).  The float stages agree with the CPU to float tolerance:
a GPU sums in another order.

A device that is not there is refused in one line naming it.
"""
from __future__ import annotations

import contextlib
import contextvars
import re

import torch

from adacal.errors import AdacalError

CHOICES = "cpu, cuda, cuda:N or mps"
_CURRENT: contextvars.ContextVar[torch.device] = contextvars.ContextVar("adacal_device", default=torch.device("cpu"))


def resolve(name: str | torch.device | None) -> torch.device:
    """The torch device for a --device value, checked to be present."""
    if name is None:
        return torch.device("cpu")
    text = str(name).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m:
        if not torch.cuda.is_available():
            raise AdacalError(f"device {name}: no CUDA device is available here (torch {torch.__version__}, "
                              f"built {'with' if torch.backends.cuda.is_built() else 'without'} CUDA)")
        index = int(m.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise AdacalError(f"device {name}: there {'is' if count == 1 else 'are'} only {count} CUDA "
                              f"device{'s' if count != 1 else ''} (cuda:0 .. cuda:{count - 1})")
        return torch.device("cuda", index)
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise AdacalError(f"device {name}: Apple's MPS device is not available here")
        return torch.device("mps")
    raise AdacalError(f"device {name}: expected {CHOICES}")


def current() -> torch.device:
    """The device the float stages run on now (cpu unless inside `using`)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(name):
    """Run the float stages on device `name` inside the block."""
    dev = resolve(name)
    token = _CURRENT.set(dev)
    saved = None
    if dev.type == "cuda":  # TF32 would round the integer engines' sums
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield dev
    finally:
        _CURRENT.reset(token)
        if saved is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def to_device(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """t on the current device (for an integer engine's float64 sums, the
    CPU on MPS, which has no float64)."""
    dev = current()
    if dev.type == "mps" and (dtype or t.dtype) == torch.float64:
        dev = torch.device("cpu")
    return t.to(device=dev, dtype=dtype) if dtype is not None else t.to(dev)
