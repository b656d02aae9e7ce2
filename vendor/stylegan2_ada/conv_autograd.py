"""Convolutions whose backward the engine writes itself, where torch's own is slow (docs/ENGINE.md,
"Convolution gradients for the penalties").

R1 and path length differentiate a backward pass (`autograd.grad(create_graph=True)`), so every
conv's backward is itself differentiated. torch does that with one generic routine, which on a CPU
loops over the groups of a depthwise conv (65 tiny convs for each 64-channel resampling filter) and
forms the weight part as a transposed correlation with copies (measured in docs/BENCHMARKS.md,
"The training step, fourth round"). Here the input gradient of the first backward is a plain conv
call (the adjoint: a transposed conv for a conv and the other way round), so the second backward
meets nothing but first-order conv gradients. Inside `penalty_graph()` the forward pass routes
every conv through `_Conv`; outside it nothing changes.

The penalties' first backward asks for gradients of the input image or of the ws only, never of
a weight (`r1_penalty`, `path_length`), so inside `penalty_graph()` a backward that builds a graph
skips the weight and bias gradients: torch would compute them and throw them away.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Set only inside `penalty_graph()`; read once per conv in the forward pass. A context variable
# (like torch's grad mode) rather than an argument threaded through every layer.
_PENALTY_GRAPH = contextvars.ContextVar("stylegan2_ada_penalty_graph", default=False)


@contextlib.contextmanager
def penalty_graph() -> Iterator[None]:
    """Convs made in this scope support a cheap double backward, on the condition that a backward
    run with create_graph=True asks for no weight gradient (a gradient penalty on inputs)."""
    token = _PENALTY_GRAPH.set(True)
    try:
        yield
    finally:
        _PENALTY_GRAPH.reset(token)


@dataclass(frozen=True)
class ConvSpec:
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    groups: int
    transposed: bool


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _adjoint(gy: torch.Tensor, w: torch.Tensor, spec: ConvSpec, x_shape: torch.Size) -> torch.Tensor:
    """The input gradient as one native conv call, differentiable to first order like any conv.
    A conv's adjoint is the transposed conv with the output padding that restores x's size."""
    if spec.transposed:
        return torch.convolution(gy, w, None, spec.stride, spec.padding, (1, 1), False, (0, 0), spec.groups)
    full = [(gy.shape[2 + d] - 1) * spec.stride[d] - 2 * spec.padding[d] + w.shape[2 + d] for d in range(2)]
    extra = [x_shape[2 + d] - full[d] for d in range(2)]
    return torch.convolution(gy, w, None, spec.stride, spec.padding, (1, 1), True, extra, spec.groups)


def _first_order(gy, x, w, spec: ConvSpec, has_bias: bool, need: tuple[bool, bool, bool]):
    """(gx, gw, gb) by torch's own conv backward, one call for all three (oneDNN computes the input
    and weight gradients together for less than the two apart)."""
    need_x, need_w, need_b = need
    bias_sizes = [w.shape[1] * spec.groups if spec.transposed else w.shape[0]] if has_bias else None
    mask = [need_x, need_w, need_b and has_bias]
    if not any(mask):
        return None, None, None
    return torch.ops.aten.convolution_backward(
        gy, x, w, bias_sizes, spec.stride, spec.padding, (1, 1), spec.transposed, spec.output_padding,
        spec.groups, mask)


class _Conv(torch.autograd.Function):
    """torch.convolution forward; backward by torch's own conv backward, except in a backward
    that builds a graph (the penalty's first one): there the adjoint conv for the input only."""

    @staticmethod
    def forward(ctx, x, w, b, spec: ConvSpec):
        ctx.save_for_backward(x, w)
        ctx.spec, ctx.has_bias = spec, b is not None
        return torch.convolution(x, w, b, spec.stride, spec.padding, (1, 1), spec.transposed,
                                 spec.output_padding, spec.groups)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        spec, has_bias = ctx.spec, ctx.has_bias
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if not torch.is_grad_enabled():  # a backward that nothing differentiates
            gx, gw, gb = _first_order(gy, x, w, spec, has_bias, (need_x, need_w, need_b))
            return gx, gw, gb, None
        # Building a graph (create_graph=True): the penalty's first backward, which wants the
        # input's gradient only. It is a conv call, differentiable to first order like any;
        # the weight and bias gradients nobody asked for are not computed.
        gx = _adjoint(gy, w, spec, x.shape) if need_x else None
        return gx, None, None, None


def _in_penalty_graph(x: torch.Tensor, w: torch.Tensor) -> bool:
    """A conv of a penalty's forward pass that autograd records. Compiled graphs (which the
    penalties never use) keep torch's own. Checked before anything else is built: every conv
    of every phase passes here."""
    return (_PENALTY_GRAPH.get() and torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)
            and not torch.compiler.is_compiling())


def conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, stride: int = 1,
           padding: int | tuple[int, int] = 0, groups: int = 1) -> torch.Tensor:
    """F.conv2d, with the engine's own backward inside `penalty_graph()`."""
    if _in_penalty_graph(x, w):
        return _Conv.apply(x, w, b, ConvSpec(_pair(stride), _pair(padding), (0, 0), groups, False))
    return F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups)


def conv_transpose2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, stride: int = 1,
                     padding: int | tuple[int, int] = 0, output_padding: int | tuple[int, int] = 0,
                     groups: int = 1) -> torch.Tensor:
    """F.conv_transpose2d, with the engine's own backward inside `penalty_graph()`."""
    if _in_penalty_graph(x, w):
        spec = ConvSpec(_pair(stride), _pair(padding), _pair(output_padding), groups, True)
        return _Conv.apply(x, w, b, spec)
    return F.conv_transpose2d(x, w, b, stride=stride, padding=padding, output_padding=output_padding,
                              groups=groups)
