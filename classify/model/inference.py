"""Inference on uint8 image batches: normalisation, input matching and batched probabilities.

The model and the judge API (`checkpoint.Classifier`) use these; so does training's validation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Pretrained ImageNet statistics; the grayscale ones are the channel means, matching the
# RGB-summing stem adaptation used for 1-channel pretrained models.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalisation(in_chans: int, pretrained: bool) -> dict[str, list[float]]:
    """Per-channel mean/std stored in the checkpoint so inference matches training."""
    if not pretrained:
        return {"mean": [0.5] * in_chans, "std": [0.5] * in_chans}
    if in_chans == 3:
        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    return {"mean": [sum(IMAGENET_MEAN) / 3], "std": [sum(IMAGENET_STD) / 3]}


def to_unit_float(x_uint8: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 [B, C, H, W] on any device -> float [0, 1] on `device`."""
    return x_uint8.to(device, non_blocking=True).float().div_(255.0)


def normalise(x: torch.Tensor, norm: dict[str, list[float]]) -> torch.Tensor:
    mean = torch.tensor(norm["mean"], device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"], device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def match_input(x_uint8: torch.Tensor, res: int, in_chans: int) -> torch.Tensor:
    """Bring any uint8 image batch to the model's channel count and resolution (judge use)."""
    if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4:
        raise ValueError(f"expected a uint8 [N, C, H, W] tensor, got {x_uint8.dtype} {tuple(x_uint8.shape)}")
    c = x_uint8.shape[1]
    x = x_uint8
    if c != in_chans:
        if c == 1 and in_chans == 3:
            x = x.expand(-1, 3, -1, -1)
        elif c in (3, 4) and in_chans == 1:
            x = x[:, :3].float().mean(dim=1, keepdim=True).round().to(torch.uint8)
        elif c == 4 and in_chans == 3:
            x = x[:, :3]
        else:
            raise ValueError(f"cannot feed {c}-channel images to a {in_chans}-channel model")
    if x.shape[-1] != res or x.shape[-2] != res:
        x = F.interpolate(x.float(), size=(res, res), mode="bilinear", antialias=True, align_corners=False)
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x


@torch.no_grad()
def predict_probs(model: torch.nn.Module, x_uint8: torch.Tensor, norm: dict, device: torch.device | str,
                  batch: int = 256, amp_dtype: torch.dtype | None = None,
                  features: bool = False) -> torch.Tensor:
    """Softmax probabilities (or penultimate features) for a uint8 tensor, in eval mode, on CPU."""
    was_training = model.training
    model.eval()
    outs = []
    dev_type = torch.device(device).type
    for start in range(0, x_uint8.shape[0], batch):
        xb = normalise(to_unit_float(x_uint8[start:start + batch], device), norm)
        with torch.autocast(dev_type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model.features(xb) if features else model(xb)
        out = out.float() if features else torch.softmax(out.float(), dim=1)
        outs.append(out.cpu())
    model.train(was_training)
    if not outs:
        return torch.empty((0, 0))
    return torch.cat(outs)
