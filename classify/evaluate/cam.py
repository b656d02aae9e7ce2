"""Grad-CAM and Grad-CAM++ heatmaps of a trained classifier, and the rule that picks their layer.

The heatmaps come from the `grad-cam` package (pytorch_grad_cam); this module only decides
which layer they read and feeds it the model's own normalised input.

The layer rule, for every registry model and any `timm:NAME`: run one blank image at the
model's resolution and watch every module of the backbone; among those whose output is a
feature map [N, C, H, W], take the last one to finish whose map is at least MIN_MAP_SIDE pixels
on a side, preferring stages (modules at most two levels deep: `layer4`, `blocks.5`,
`features.27`) over the layers inside them; a stage finishes after its blocks, so the whole
stage wins.
A 1x1 or 2x2 map cannot say *where* anything is: ResNet-18 at 32 px ends in a 1x1 `layer4`, so
there the rule takes `layer2` (4x4). `--layer NAME` overrides it. A model whose last layers
work on token sequences (a vision transformer) or that has no feature map at all is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from classify.core.errors import UserError

MIN_MAP_SIDE = 4
METHODS = ("gradcam", "gradcam++")


@dataclass
class LayerChoice:
    name: str  # module name inside the backbone, e.g. "layer4" or "features.27"
    module: nn.Module
    shape: tuple[int, ...]  # output shape for one image at the model's resolution, [1, C, H, W]
    rule: str  # how it was chosen, for captions and explain.json

    @property
    def map_size(self) -> str:
        return f"{self.shape[-2]}x{self.shape[-1]}"


def trace_outputs(backbone: nn.Module, res: int,
                  in_chans: int) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, module, output shape) for every backbone module, in the order they finish."""
    events: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    hooks = []
    for name, module in backbone.named_modules():
        if not name:
            continue

        def record(mod, _inp, out, name=name):
            if isinstance(out, torch.Tensor):
                events.append((name, mod, tuple(out.shape)))

        hooks.append(module.register_forward_hook(record))
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            device = next(backbone.parameters()).device
            backbone(torch.zeros(1, in_chans, res, res, device=device))
    except RuntimeError as exc:
        raise UserError(f"cannot run the model on a {res}px image to find its feature maps "
                        f"({str(exc).splitlines()[0][:120]})") from None
    finally:
        for h in hooks:
            h.remove()
        backbone.train(was_training)
    return events


def pick_layer(backbone: nn.Module, res: int, in_chans: int, model_name: str,
               layer: str | None = None) -> LayerChoice:
    """The layer Grad-CAM reads: `layer` by name, or the rule in the module docstring."""
    events = trace_outputs(backbone, res, in_chans)
    maps = [e for e in events if len(e[2]) == 4]
    if layer is not None:
        return _named_layer(backbone, events, maps, layer, model_name, res)
    if not maps or not any(isinstance(m, nn.Conv2d) for m in backbone.modules()):
        raise UserError(f"{model_name} has no convolutional stage "
                        "(no layer gives a [N, C, H, W] feature map); "
                        "Grad-CAM needs one — explain a convolutional model (classify models lists them)")
    last_map = max(i for i, e in enumerate(events) if len(e[2]) == 4)
    tokens = [i for i, e in enumerate(events) if len(e[2]) == 3]
    if tokens and tokens[-1] > last_map:
        raise UserError(f"{model_name} ends in layers that work on token sequences, not feature maps (no "
                        "convolutional stage at the end); Grad-CAM needs one — pass --layer NAME of a "
                        f"convolutional layer to try anyway (e.g. {maps[-1][0]})")
    side = lambda i: min(events[i][2][-2:])  # noqa: E731
    spatial = [i for i, e in enumerate(events) if len(e[2]) == 4 and side(i) > 1]
    if not spatial:
        raise UserError(f"every feature map of {model_name} is 1x1 at {res}px, so a heatmap cannot place "
                        "anything; train at a higher --res")
    big = [i for i in spatial if side(i) >= MIN_MAP_SIDE]
    if big:
        stages = [i for i in big if events[i][0].count(".") <= 1]
        pick = (stages or big)[-1]
        rule = f"the last stage whose map is at least {MIN_MAP_SIDE}x{MIN_MAP_SIDE} at {res}px"
        smaller = [i for i in range(pick + 1, len(events)) if len(events[i][2]) == 4]
        if smaller:
            rule += f" (deeper maps are {events[smaller[-1]][2][-2]}x{events[smaller[-1]][2][-1]})"
    else:
        top = max(side(i) for i in spatial)
        largest = [i for i in spatial if side(i) == top]
        pick = ([i for i in largest if events[i][0].count(".") <= 1] or largest)[-1]
        rule = f"the last of the largest maps (none reaches {MIN_MAP_SIDE}x{MIN_MAP_SIDE} at {res}px)"
    name, module, shape = events[pick]
    return LayerChoice(name, module, shape, rule)


def _named_layer(backbone, events, maps, layer: str, model_name: str, res: int) -> LayerChoice:
    name = layer.removeprefix("backbone.")
    modules = dict(backbone.named_modules())
    if not name or name not in modules:
        stages = list(dict.fromkeys(e[0] for e in maps if e[0].count(".") <= 1))[-8:]
        hint = f"; feature-map layers include {', '.join(stages)}" if stages else ""
        raise UserError(f"--layer {layer!r} is not a layer of {model_name}{hint}")
    outs = [e for e in events if e[0] == name]
    if not outs or len(outs[-1][2]) != 4:
        shape = list(outs[-1][2]) if outs else "nothing"
        raise UserError(f"--layer {layer!r} of {model_name} gives {shape} at {res}px, not a feature map "
                        "[N, C, H, W]; pick a convolutional layer")
    return LayerChoice(name, modules[name], outs[-1][2], "--layer")


class _DecoupledHeadNet(nn.Module):
    """The backbone followed by a decoupled scikit-learn head (classify.model.heads) as a linear
    layer with the same logits, so that the heatmap explains the head that makes the decision."""

    def __init__(self, net: nn.Module, head: dict):
        super().__init__()
        self.backbone = net.backbone
        coef = head["coef"].float() / head["scale"].float()
        bias = (head["intercept"].float()
                - (head["mean"].float() / head["scale"].float()) @ head["coef"].float().T)
        if coef.shape[0] == 1:  # binary: margin m for class 1; softmax([0, m]) = [1 - sigmoid(m), sigmoid(m)]
            coef, bias = torch.cat([torch.zeros_like(coef), coef]), torch.cat([torch.zeros_like(bias), bias])
        self.head = nn.Linear(coef.shape[1], coef.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(coef)
            self.head.bias.copy_(bias)
        self.head.to(next(net.parameters()).device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def explained_net(clf) -> nn.Module:
    """The torch module whose logits the heatmaps explain: the network, or its decoupled head."""
    return clf.model if clf.head is None else _DecoupledHeadNet(clf.model, clf.head)


def cam_maps(net: nn.Module, layer: nn.Module, x: torch.Tensor, targets: list[int], method: str,
             batch: int = 32) -> np.ndarray:
    """float [N, H, W] in [0, 1]: heat for class `targets[i]` on normalised input x [N, C, H, W]."""
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus  # noqa: PLC0415 — grad-cam: heavy, only `classify explain` needs it
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: PLC0415 — grad-cam: heavy, only `classify explain` needs it

    if method not in METHODS:
        raise UserError(f"unknown heatmap method {method!r}; choose from {', '.join(METHODS)}")
    cls = GradCAM if method == "gradcam" else GradCAMPlusPlus
    out = []
    cam = cls(model=net, target_layers=[layer])
    try:
        with torch.enable_grad():
            for start in range(0, len(x), batch):
                chunk = x[start:start + batch]
                wanted = [ClassifierOutputTarget(int(t)) for t in targets[start:start + batch]]
                out.append(np.asarray(cam(input_tensor=chunk, targets=wanted), dtype=np.float32))
    finally:
        cam.activations_and_grads.release()
    return np.concatenate(out) if out else np.zeros((0, *x.shape[-2:]), np.float32)
