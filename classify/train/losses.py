"""Losses over soft targets: every strategy hands the loss a [B, K] target distribution.

Soft targets let one code path serve hard labels, label smoothing, mixup and cutmix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def inverse_frequency_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """w_k = N / (K * n_k): a balanced set gets all ones; a class absent from train gets 0."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = torch.where(counts > 0, labels.numel() / (num_classes * counts.clamp(min=1)),
                          torch.zeros_like(counts))
    return weights.float()


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None,
                       focal_gamma: float = 0.0, sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of -s_i * sum_k w_k * (1 - p_k)^gamma * y_k * log p_k.

    gamma=0 and no weights is plain cross-entropy; gamma=2 is the focal loss of Lin et al.,
    which down-weights examples the model already gets right (the abundant class, mostly).
    `sample_weights` s_i scale single images (synthetic ones by --synthetic-weight); the mean
    stays over the batch size, so a weight of 0.5 halves what that image contributes.
    """
    logp = F.log_softmax(logits.float(), dim=1)
    per_class = -target * logp
    if focal_gamma > 0:
        per_class = per_class * (1.0 - logp.exp()).pow(focal_gamma)
    if class_weights is not None:
        per_class = per_class * class_weights.to(per_class.device)
    per_image = per_class.sum(dim=1)
    if sample_weights is not None:
        per_image = per_image * sample_weights.to(per_image)
    return per_image.mean()


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    target = F.one_hot(labels, num_classes).float()
    if smoothing > 0:
        target = target * (1.0 - smoothing) + smoothing / num_classes
    return target
