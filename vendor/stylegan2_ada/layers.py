"""Equalised-learning-rate layers and the mapping network (docs/ENGINE.md: "Notation and building blocks",
"Mapping network").

The weights are stored at unit scale and multiplied by a runtime gain (the equalised learning
rate), so parameter names and values match the reference checkpoints.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .ops import act_gain, bias_act, conv2d_resample, normalize_2nd_moment, setup_filter


class FullyConnectedLayer(nn.Module):
    """y = act(x @ (weight * lr_mul / sqrt(in))^T + bias * lr_mul) * act_gain."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_mul: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        # Init N(0, 1) / lr_mul so that the *effective* weight starts at N(0, 1/in).
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"FullyConnectedLayer: expected input [N, {self.in_features}], got {tuple(x.shape)}"
            )
        # act(x + b) * g = act(g * x + g * b) for the positively homogeneous activations and g > 0:
        # the activation gain goes onto the small weight and bias, not onto the output.
        g = act_gain(self.activation)
        w = self.weight.to(x.dtype) * (self.weight_gain * g)
        if self.bias is None:
            return bias_act(x.matmul(w.t()), None, act=self.activation, gain=1.0, inplace=True)
        b = self.bias.to(x.dtype) * (self.bias_gain * g)
        return bias_act(torch.addmm(b.unsqueeze(0), x, w.t()), None, act=self.activation, gain=1.0,
                        inplace=True)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class Conv2dLayer(nn.Module):
    """Equalised-LR conv (weight / sqrt(in * k * k)) with optional down=2, then bias_act.

    Used by the discriminator. Every instance carries the `resample_filter` buffer because the
    reference checkpoints have it, even for layers that do not resample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        down: int = 1,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.down = down
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.register_buffer("resample_filter", setup_filter())
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        self.weight = nn.Parameter(weight.to(memory_format=self.memory_format))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2dLayer: expected input [N, {self.in_channels}, H, W], got {tuple(x.shape)}"
            )
        if gain <= 0:
            raise ValueError(f"Conv2dLayer: gain must be positive, got {gain}")
        # act(x + b) * g = act(g * x + g * b) for g > 0 (lrelu and linear are positively
        # homogeneous), so the whole gain goes onto the weight and bias and the bias into the
        # conv kernel: two passes over the activations fewer, forward and backward.
        g = act_gain(self.activation) * gain
        w = self.weight.to(x.dtype) * (self.weight_gain * g)
        b = self.bias.to(x.dtype) * g if self.bias is not None else None
        x = conv2d_resample(x, w, self.resample_filter, down=self.down, padding=self.padding, bias=b)
        # The layer gain (sqrt(.5) in resnet blocks) scales both the activation gain and the clamp.
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, None, act=self.activation, gain=1.0, clamp=clamp, inplace=True)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, act={self.activation}, "
            f"down={self.down}, clamp={self.conv_clamp}"
        )


class MappingNetwork(nn.Module):
    """z (and one-hot c) -> w. Used by the generator (with w_avg) and by the discriminator
    (z_dim=0, no w_avg, no broadcast) for projection conditioning.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        lr_mul: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ) -> None:
        super().__init__()
        if z_dim == 0 and c_dim == 0:
            raise ValueError("MappingNetwork needs z_dim > 0 or c_dim > 0")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu", lr_mul=lr_mul)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def _check_inputs(self, z: torch.Tensor | None, c: torch.Tensor | None) -> None:
        if self.z_dim > 0 and (z is None or z.ndim != 2 or z.shape[1] != self.z_dim):
            got = None if z is None else tuple(z.shape)
            raise ValueError(f"mapping: z must be [N, {self.z_dim}], got {got}")
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                got = None if c is None else tuple(c.shape)
                raise ValueError(
                    f"mapping: c must be a one-hot [N, {self.c_dim}] tensor "
                    f"(the network is conditional), got {got}"
                )
            if z is not None and self.z_dim > 0 and c.shape[0] != z.shape[0]:
                raise ValueError(f"mapping: z has {z.shape[0]} rows but c has {c.shape[0]}")

    def _embed(self, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        """normalize(z) concatenated with normalize(embed(c)) (either may be absent)."""
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim > 0:
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        self._check_inputs(z, c)
        x = self._embed(z, c)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas and hasattr(self, "w_avg"):
            # Track the mean w (used as the truncation centre): w_avg = lerp(mean(w), w_avg, beta).
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            x = self._truncate(x, truncation_psi, truncation_cutoff)
        return x

    def _truncate(self, x: torch.Tensor, psi: float, cutoff: int | None) -> torch.Tensor:
        """w = w_avg + psi * (w - w_avg), on all ws or only the first `cutoff`."""
        if not hasattr(self, "w_avg"):
            raise ValueError("truncation needs w_avg, which this mapping network does not track")
        truncated = self.w_avg.lerp(x, psi)
        if cutoff is None or cutoff >= self.num_ws:
            return truncated
        if cutoff < 0:
            raise ValueError(f"truncation_cutoff must be >= 0, got {cutoff}")
        return torch.cat([truncated[:, :cutoff], x[:, cutoff:]], dim=1)
