"""Batched homogeneous matrices for the ADA pipeline's geometric (3x3) and colour (4x4) steps.

Every builder takes per-sample parameters of shape [N] and returns [N, k, k] float32
matrices. Geometric matrices act on centred pixel coordinates (x, y, 1); colour matrices
act on (r, g, b, 1).
"""

from __future__ import annotations

import math

import torch

# The luma axis of the colour steps: grey values lie along (1, 1, 1) / sqrt(3).
LUMA_AXIS = (1 / math.sqrt(3),) * 3


def _eye(n: int, size: int, device: torch.device) -> torch.Tensor:
    return torch.eye(size, device=device).repeat(n, 1, 1)


def translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _eye(tx.shape[0], 3, tx.device)
    m[:, 0, 2] = tx
    m[:, 1, 2] = ty
    return m


def scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _eye(sx.shape[0], 3, sx.device)
    m[:, 0, 0] = sx
    m[:, 1, 1] = sy
    return m


def rotate2d_cos_sin(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotation given cos/sin directly, so quarter turns can be exact (no 1e-8 residues)."""
    m = _eye(cos.shape[0], 3, cos.device)
    m[:, 0, 0] = cos
    m[:, 0, 1] = -sin
    m[:, 1, 0] = sin
    m[:, 1, 1] = cos
    return m


def rotate2d(theta: torch.Tensor) -> torch.Tensor:
    return rotate2d_cos_sin(torch.cos(theta), torch.sin(theta))


def quarter_turns(k: torch.Tensor) -> torch.Tensor:
    """Rotation by k * 90 degrees (k integer in 0..3), with exact entries."""
    table_cos = torch.tensor([1.0, 0.0, -1.0, 0.0], device=k.device)
    table_sin = torch.tensor([0.0, 1.0, 0.0, -1.0], device=k.device)
    return rotate2d_cos_sin(table_cos[k], table_sin[k])


def translate3d(b: torch.Tensor) -> torch.Tensor:
    """Add `b` to every colour channel (brightness)."""
    m = _eye(b.shape[0], 4, b.device)
    m[:, :3, 3] = b[:, None]
    return m


def scale3d(s: torch.Tensor) -> torch.Tensor:
    """Multiply every colour channel by `s` about zero, i.e. about mid-grey for [-1, 1] images."""
    m = _eye(s.shape[0], 4, s.device)
    m[:, 0, 0] = s
    m[:, 1, 1] = s
    m[:, 2, 2] = s
    return m


def _luma_outer(device: torch.device) -> torch.Tensor:
    v = torch.tensor(LUMA_AXIS, device=device)
    return torch.outer(v, v)


def luma_flip(flip: torch.Tensor) -> torch.Tensor:
    """Householder reflection across the plane orthogonal to the luma axis where flip=1.

    It inverts brightness while keeping hue and saturation: I - 2 v v^T.
    """
    m = _eye(flip.shape[0], 4, flip.device)
    m[:, :3, :3] -= 2 * _luma_outer(flip.device) * flip.float()[:, None, None]
    return m


def hue_rotation(theta: torch.Tensor) -> torch.Tensor:
    """Rotation by `theta` about the luma axis (Rodrigues' formula)."""
    device = theta.device
    v = torch.tensor(LUMA_AXIS, device=device)
    cross = torch.tensor(
        [[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]], device=device
    )
    cos = torch.cos(theta)[:, None, None]
    sin = torch.sin(theta)[:, None, None]
    rot = cos * torch.eye(3, device=device) + sin * cross + (1 - cos) * _luma_outer(device)
    m = _eye(theta.shape[0], 4, device)
    m[:, :3, :3] = rot
    return m


def saturation(s: torch.Tensor) -> torch.Tensor:
    """Scale the chroma (the part orthogonal to the luma axis) by `s`: v v^T + s (I - v v^T)."""
    device = s.device
    vv = _luma_outer(device)
    m = _eye(s.shape[0], 4, device)
    m[:, :3, :3] = vv + (torch.eye(3, device=device) - vv) * s[:, None, None]
    return m
