"""In-place distillation losses: the largest subnet's detached logits teach the others.

``kl``: Hinton's KD, ``T^2 * KL(softmax(t / T) || softmax(s / T))``. ``alpha``: AlphaNet's
adaptive alpha-divergence, the larger of ``D_alpha`` at a negative and a positive alpha,
which penalises both over- and under-estimating the teacher's uncertainty.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DISTILL_LOSSES = ("kl", "alpha")


def _flatten(student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
    """(B, C) or (B, T, V) with the teacher's T >= the student's -> (N, C) float32 pairs."""
    if student.dim() == 3:
        teacher = teacher[:, : student.shape[1]]
    c = student.shape[-1]
    return student.reshape(-1, c).float(), teacher.reshape(-1, c).float()


def kl_distillation(student: Tensor, teacher: Tensor, *, temperature: float = 1.0) -> Tensor:
    s, t = _flatten(student, teacher)
    log_p_s = F.log_softmax(s / temperature, dim=-1)
    log_p_t = F.log_softmax(t / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * temperature**2


def alpha_divergence(student: Tensor, teacher: Tensor, *, alpha: float,
                     temperature: float = 1.0, max_log_ratio: float = 5.0) -> Tensor:
    """Amari alpha-divergence D_alpha(p_t || p_s), averaged over rows; alpha not in {0, 1}.

    ``(sum_i p_t^alpha p_s^(1 - alpha) - 1) / (alpha (alpha - 1))``, with the log ratio
    clipped to +-``max_log_ratio`` for stability (as AlphaNet clips it).
    """
    if alpha in (0.0, 1.0):
        raise ValueError("alpha must not be 0 or 1 (those are the two KL limits)")
    s, t = _flatten(student, teacher)
    log_p_s = F.log_softmax(s / temperature, dim=-1)
    log_p_t = F.log_softmax(t / temperature, dim=-1)
    log_ratio = (log_p_t - log_p_s).clamp(-max_log_ratio, max_log_ratio)
    inner = (log_p_s.exp() * torch.exp(alpha * log_ratio)).sum(-1)
    return ((inner - 1.0) / (alpha * (alpha - 1.0))).mean() * temperature**2


def distillation_loss(student: Tensor, teacher: Tensor, *, kind: str = "kl",
                      temperature: float = 1.0, alpha_min: float = -1.0,
                      alpha_max: float = 0.5) -> Tensor:
    """The student's loss against the detached teacher logits."""
    if kind == "kl":
        return kl_distillation(student, teacher, temperature=temperature)
    if kind == "alpha":
        return torch.maximum(
            alpha_divergence(student, teacher, alpha=alpha_min, temperature=temperature),
            alpha_divergence(student, teacher, alpha=alpha_max, temperature=temperature))
    raise ValueError(f"distill: {kind!r} is not one of {DISTILL_LOSSES}")
