"""How far a spiking network's output is from the ANN's (for the searches)."""
import numpy as np
import torch


def symmetric_kl_per_sample(snn_out: np.ndarray, ann_out: np.ndarray) -> np.ndarray:
    """Per sample, KL(p||q) + KL(q||p), p = softmax(ANN), q = softmax(SNN),
    computed with log-softmax (no log 0); float64 (N,)."""
    lp = torch.log_softmax(torch.as_tensor(ann_out, dtype=torch.float64).reshape(len(ann_out), -1), dim=1)
    lq = torch.log_softmax(torch.as_tensor(snn_out, dtype=torch.float64).reshape(len(snn_out), -1), dim=1)
    return ((lp.exp() * (lp - lq)).sum(dim=1) + (lq.exp() * (lq - lp)).sum(dim=1)).numpy()


def symmetric_kl(snn_out: np.ndarray, ann_out: np.ndarray) -> float:
    """Mean over samples of symmetric_kl_per_sample."""
    return float(symmetric_kl_per_sample(snn_out, ann_out).mean())
