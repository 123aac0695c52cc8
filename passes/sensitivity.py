"""How far a spiking network's output is from the ANN's (for the searches)."""
import numpy as np
import torch


def symmetric_kl(snn_out: np.ndarray, ann_out: np.ndarray) -> float:
    """Mean over samples of KL(p||q) + KL(q||p), p = softmax(ANN), q = softmax(SNN),
    computed with log-softmax (no log 0)."""
    lp = torch.log_softmax(torch.as_tensor(ann_out, dtype=torch.float64).reshape(len(ann_out), -1), dim=1)
    lq = torch.log_softmax(torch.as_tensor(snn_out, dtype=torch.float64).reshape(len(snn_out), -1), dim=1)
    kl = (lp.exp() * (lp - lq)).sum(dim=1) + (lq.exp() * (lq - lp)).sum(dim=1)
    return float(kl.mean())
