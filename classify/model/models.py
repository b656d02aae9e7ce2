"""Classifier model registry: a backbone that yields a pooled embedding plus a linear head.

Every model is a `ClassifierNet`: `features(x)` returns the penultimate embedding (what the
judge and the realism/memorisation filters use), `forward(x)` the class logits. Backbones
come from timm (ResNets, DenseNet, EfficientNet, and any timm architecture as `timm:NAME`)
or torchvision (VGG), built with random weights unless pretrained weights are asked for:
- `pretrained="imagenet"` downloads the architecture's ImageNet weights through timm
  (Hugging Face hub cache) or torchvision (torch hub cache), once, with progress; the first
  convolution is adapted to 1-channel input as timm does (summing the RGB filters). Offline,
  one line says how to pass a local file instead. Nothing else in the suite downloads.
- `pretrained=FILE`: a local state dict (made once on a machine that is online, e.g.
    python -c "import timm, torch; torch.save(timm.create_model('resnet18',
        pretrained=True).state_dict(), 'r18.pt')"
  ), with the same first-conv adaptation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from classify.core.errors import UserError


class ClassifierNet(nn.Module):
    """backbone (image -> [N, D] embedding) followed by a linear head (-> [N, K] logits)."""

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, stem_key: str):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(num_features, num_classes)
        self.num_features = num_features
        # The stem conv's weight name inside `backbone`; pretrained loading adapts it to in_chans.
        self.stem_key = stem_key

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _VGGBody(nn.Module):
    """torchvision VGG conv layers + global average pooling.

    The stock VGG head is a 25088->4096->4096 MLP (~120M parameters) made for 224 px
    ImageNet crops; on small defect datasets it mostly overfits and makes CPU runs slow, so
    we keep the convolutional body (which is what ImageNet weights are valuable for) and
    pool globally like the other families.
    """

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


@dataclass(frozen=True)
class ModelSpec:
    source: str  # "timm" or "torchvision"
    arch: str
    stem_key: str  # weight name of the first conv inside the backbone
    # Smallest square input the network accepts: VGG's five max-pools and DenseNet's pooled
    # transitions shrink anything smaller to nothing (measured; see test_classify_models).
    min_res: int = 8


_MODELS: dict[str, ModelSpec] = {
    "resnet18": ModelSpec("timm", "resnet18", "conv1.weight"),
    "resnet34": ModelSpec("timm", "resnet34", "conv1.weight"),
    "resnet50": ModelSpec("timm", "resnet50", "conv1.weight"),
    "vgg11_bn": ModelSpec("torchvision", "vgg11_bn", "features.0.weight", min_res=32),
    "vgg16_bn": ModelSpec("torchvision", "vgg16_bn", "features.0.weight", min_res=32),
    "densenet121": ModelSpec("timm", "densenet121", "features.conv0.weight", min_res=32),
    "efficientnet_b0": ModelSpec("timm", "efficientnet_b0", "conv_stem.weight"),
}


TIMM_PREFIX = "timm:"
# Any timm architecture may be asked for; how small an input it takes is not known in advance,
# so it gets the limit of the registry's deepest families (five stride-2 stages).
TIMM_MIN_RES = 32


def list_models() -> list[str]:
    return list(_MODELS)


def _timm_spec(name: str) -> ModelSpec:
    """A registry entry for `timm:ARCH` (any architecture timm knows)."""
    import timm  # noqa: PLC0415 — timm: heavy (~1 s), only when a network is built

    arch = name[len(TIMM_PREFIX):]
    if not arch or not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('.')[0][:6]}*")[:5] if arch else []
        hint = f" (similar: {', '.join(close)})" if close else " (`timm.list_models()` lists them)"
        raise UserError(f"unknown timm architecture {arch!r} in --model {name}{hint}")
    cfg = timm.models.get_pretrained_cfg(arch) if hasattr(timm.models, "get_pretrained_cfg") else None
    first = getattr(cfg, "first_conv", None) or "conv1"
    return ModelSpec("timm", arch, f"{first}.weight", min_res=TIMM_MIN_RES)


# Largest classifier resolution. The prepared-data cache holds every image decoded at res x res
# (uint8) in memory, so 4096 already costs 16 MB per grey image; beyond this a typo such as
# --res 100000 would only end in an out-of-memory kill minutes later.
MAX_RES = 4096


def model_spec(name: str, res: int | None = None) -> ModelSpec:
    """The registry entry; with `res`, also refuses a resolution the network cannot take.
    This is the one resolution rule of every classifier (train, ablate, the judge)."""
    if name.startswith(TIMM_PREFIX):
        spec = _timm_spec(name)
    elif name not in _MODELS:
        raise UserError(f"unknown model {name!r}; valid models: {', '.join(_MODELS)}, "
                        "or any timm architecture as timm:NAME (e.g. timm:convnext_nano)")
    else:
        spec = _MODELS[name]
    if res is not None and res > MAX_RES:
        raise UserError(f"--res {res} is larger than {MAX_RES}: every image is held in memory at res x res; "
                        "use e.g. 128, 224 or 512")
    if res is not None and res < spec.min_res:
        others = [m for m, s in _MODELS.items() if s.min_res <= max(res, 0) and m != name]
        hint = f" or pick one that takes {res}px ({', '.join(others[:3])})" if others else ""
        raise UserError(f"{name} needs --res >= {spec.min_res} (its pooling stages shrink {res}px images to "
                        f"nothing); raise --res{hint}")
    return spec


IMAGENET = "imagenet"


def _timm_backbone(arch: str, in_chans: int, imagenet: bool) -> tuple[nn.Module, int]:
    import timm  # noqa: PLC0415 — timm: heavy (~1 s), only when a network is built

    # num_classes=0 makes timm return the pooled pre-logits embedding from forward(); with
    # pretrained=True timm adapts the stem to in_chans itself.
    net = timm.create_model(arch, pretrained=imagenet, num_classes=0, in_chans=in_chans)
    # Models with a pre-logits layer (MobileNetV3's 1x1 conv head) return head_hidden_size
    # features, not num_features, once the classifier is removed.
    return net, int(getattr(net, "head_hidden_size", None) or net.num_features)


def _torchvision_vgg(arch: str, in_chans: int, imagenet: bool) -> tuple[nn.Module, int]:
    import torchvision  # noqa: PLC0415 — torchvision: heavy, only for its own networks

    vgg = getattr(torchvision.models, arch)(weights="IMAGENET1K_V1" if imagenet else None)
    features = vgg.features
    if in_chans != 3:
        from timm.models import adapt_input_conv  # noqa: PLC0415 — timm: heavy (~1 s), only when a network is built

        first = features[0]
        features[0] = nn.Conv2d(in_chans, first.out_channels, first.kernel_size, first.stride, first.padding)
        if imagenet:  # the same rule timm applies to its own stems
            with torch.no_grad():
                features[0].weight.copy_(adapt_input_conv(in_chans, first.weight))
                features[0].bias.copy_(first.bias)
    return _VGGBody(features), 512


def _download_backbone(spec: ModelSpec, name: str, in_chans: int) -> tuple[nn.Module, int]:
    """The ImageNet backbone, from the library's download cache (fetched once when online)."""
    try:
        return _BACKBONE_BUILDERS[spec.source](spec.arch, in_chans, True)
    except RuntimeError as exc:
        if "pretrained" in str(exc).lower() and "no" in str(exc).lower():
            raise UserError(f"{name} has no ImageNet weights in {spec.source}; pick another --model or train "
                            "without --pretrained") from None
        raise _offline(name, exc) from None
    except (OSError, ValueError, ImportError) as exc:  # no network, hub errors, a half-written cache file
        raise _offline(name, exc) from None


def _offline(name: str, exc: BaseException) -> UserError:
    reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return UserError(f"--pretrained imagenet: cannot fetch the ImageNet weights of {name} ({reason}); "
                     "on a machine that is online save them once (see `classify models --help`) "
                     "and pass the file: --pretrained FILE")


_BACKBONE_BUILDERS: dict[str, Callable[[str, int, bool], tuple[nn.Module, int]]] = {
    "timm": _timm_backbone,
    "torchvision": _torchvision_vgg,
}


def build_model(name: str, num_classes: int, in_chans: int = 3,
                pretrained: str | Path | None = None) -> ClassifierNet:
    """A registry model: random weights, ImageNet weights (`pretrained="imagenet"`, downloaded
    once into the library's cache) or backbone weights from a local state-dict file."""
    spec = model_spec(name)
    if in_chans not in (1, 3):
        raise UserError(f"in_chans must be 1 or 3, got {in_chans}; prepare the data as grayscale or RGB")
    if num_classes < 2:
        raise UserError(f"a classifier needs at least 2 classes, got {num_classes}; "
                        "check the prepared data's classes")
    if pretrained == IMAGENET:
        backbone, dim = _download_backbone(spec, name, in_chans)
    else:
        backbone, dim = _BACKBONE_BUILDERS[spec.source](spec.arch, in_chans, False)
    net = ClassifierNet(backbone, dim, num_classes, spec.stem_key)
    if pretrained is not None and pretrained != IMAGENET:
        load_pretrained_backbone(net, pretrained)
    return net


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"pretrained weights file {path} not found; give a local state-dict file, or "
                        "--pretrained imagenet to download the architecture's ImageNet weights")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file or a pickled model object
        raise UserError(f"cannot read pretrained weights {path} ({type(exc).__name__}); "
                        "save a plain state_dict with torch.save") from None
    # timm training checkpoints wrap the weights; DataParallel/DDP prefix them with "module.".
    for key in ("state_dict_ema", "state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"pretrained weights {path} is not a state dict of tensors; save model.state_dict()")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_pretrained_backbone(net: ClassifierNet, path: str | Path) -> None:
    """Copy backbone weights from a state-dict file; the head stays random (class count differs).

    The stem conv is adapted to in_chans with timm's rule (sum RGB for 1 channel), so
    ImageNet RGB weights serve grayscale defect images.
    """
    from timm.models import adapt_input_conv  # noqa: PLC0415 — timm: heavy (~1 s), only when a network is built

    path = Path(path)
    state = _read_state_dict(path)
    own = net.backbone.state_dict()
    # Keys outside the backbone (the source's own classifier: fc.*, classifier.*) are dropped.
    state = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in state]
    if missing:
        raise UserError(
            f"pretrained weights {path} do not fit this model: {len(missing)} backbone tensors missing "
            f"(e.g. {missing[0]}); use a state dict of the same architecture"
        )
    stem = state[net.stem_key]
    if stem.shape[1] != own[net.stem_key].shape[1]:
        state[net.stem_key] = adapt_input_conv(own[net.stem_key].shape[1], stem)
    bad = [k for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise UserError(f"pretrained weights {path}: tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
                        f"the model expects {tuple(own[bad[0]].shape)}; use weights of the same architecture")
    net.backbone.load_state_dict(state)
