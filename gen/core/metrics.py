"""FID/KID-style metrics between two image sets, named by the feature extractor that made them.

Two extractors, never mixed:
- `inception`: torch-fidelity's `inception-v3-compat`, only from a local weights file (we never
  let torch-fidelity download). Metrics are `fid_inception`, `kid_inception`.
- `judge`: the penultimate features of a `classify train` checkpoint, registered with
  torch-fidelity as `ganbalance-judge` so that `torch_fidelity.calculate_metrics` can use it
  too. Metrics are `fd_judge`, `kd_judge` — not "FID": no Inception is involved.

The trainer calls `compute_metrics(fake_uint8, real_uint8, names=("fd", "kd"), extractor=...)`
where `extractor` is a built `Extractor` (build it once: loading a judge is not free) or an
`ExtractorConfig`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch_fidelity import FeatureExtractorBase, FeatureExtractorInceptionV3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from classify.core.configs import Config
from classify.core.errors import UserError
from classify.model.loading import load_classifier
from gen.core.setmetrics import frechet_distance, kernel_distance

JUDGE_EXTRACTOR = "ganbalance-judge"
METRIC_KINDS = {"fd": "fd", "fid": "fd", "kd": "kd", "kid": "kd"}


class JudgeFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity wrapper around a judge classifier's penultimate features.

    torch-fidelity builds extractors as `cls(name, features_list, **calculate_metrics_kwargs)`,
    so the judge checkpoint arrives as `feature_extractor_weights_path`; a judge already in
    memory can be passed as `judge=` (torch-fidelity forwards unknown kwargs untouched).
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, judge=None, **kwargs):
        super().__init__(name, features_list)
        if judge is None:
            if not feature_extractor_weights_path:
                raise UserError("the judge feature extractor needs a classifier checkpoint; "
                                "pass --judge MODEL")
            judge = load_classifier(feature_extractor_weights_path, device="cpu")
        self.judge = judge

    @staticmethod
    def get_provided_features_list():
        return ("penultimate",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "penultimate"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        raise NotImplementedError

    def forward(self, x):
        return (self.judge.features(x).float(),)


if JUDGE_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
    # torch-fidelity's registry is global and refuses a second registration (module reloads).
    register_feature_extractor(JUDGE_EXTRACTOR, JudgeFeatureExtractor)


@dataclass
class ExtractorConfig(Config):
    """Which features the metrics use. `weights_path`: judge model.pt or local Inception .pth."""

    config_name = "extractor config keys"

    kind: str = "judge"
    weights_path: str | None = None
    batch: int = 64


class Extractor:
    """A feature extractor with a label for metric names and a channel policy."""

    def __init__(self, label: str, module: torch.nn.Module, channels: int | None, batch: int, device: str):
        self.label = label  # "judge" | "inception": goes into every metric name
        self.module = module
        self.channels = channels  # channels the module wants (None: whatever it is given)
        self.batch = batch
        self.device = device

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise ValueError(f"features expect uint8 [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
        c = x.shape[1]
        if self.label == "inception" and c == 1:
            # Only Inception gets grayscale replicated: it was trained on RGB photos.
            x = x.expand(-1, 3, -1, -1)
        elif self.label == "inception" and c == 4:
            x = x[:, :3]
        elif self.channels is not None and c != self.channels:
            # A judge sees images as it was trained: silently faking channels would skew every score.
            raise UserError(
                f"the {self.label} feature extractor expects {self.channels}-channel images, got {c}; "
                "use a judge trained on the same channel count as the generator"
            )
        return x.to(self.device)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Float32 features [N, D] on the CPU, computed in batches."""
        out = [self.module(self._prepare(chunk))[0].float().cpu() for chunk in images.split(self.batch)]
        return torch.cat(out) if out else torch.zeros(0, 0)


def _build_judge(weights_path: str | None = None, judge: Any = None, device: str = "cpu",
                 batch: int = 64) -> Extractor:
    if judge is None and weights_path is not None and not Path(weights_path).is_file():
        raise UserError(f"judge checkpoint {weights_path} does not exist; train one with `classify train`")
    if judge is None and weights_path is not None:
        judge = load_classifier(weights_path, device=device)
    module = JudgeFeatureExtractor(JUDGE_EXTRACTOR, ["penultimate"],
                                   feature_extractor_weights_path=weights_path, judge=judge)
    return Extractor("judge", module.eval(), getattr(judge, "in_chans", None), batch, device)


def _build_inception(weights_path: str | None = None, judge: Any = None, device: str = "cpu",
                     batch: int = 64) -> Extractor:
    if not weights_path:
        raise UserError("Inception metrics need local weights (--inception-weights PATH); "
                        "without them use the judge's features")
    path = Path(weights_path)
    if not path.is_file():
        raise UserError(f"Inception weights {path} do not exist; "
                        "pass the torch-fidelity .pth file or use the judge")
    state = _read_inception_state(path)
    # torch-fidelity only takes weights through a torch.load(..., weights_only=False) of what it
    # is given: it gets an in-memory copy of the tensors read above, never the user's file, so
    # the file is read once (restricted) and cannot be swapped between a check and a load.
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    try:
        module = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                             feature_extractor_weights_path=buf)
    except RuntimeError as exc:  # load_state_dict: missing/unexpected keys or wrong shapes
        raise UserError(f"{path} holds tensors, but not torch-fidelity's Inception weights "
                        f"({str(exc).splitlines()[0][:160]}); "
                        "pass the pt_inception-2015-12-05 .pth") from None
    return Extractor("inception", module.eval().requires_grad_(False).to(device), 3, batch, device)


def _read_inception_state(path: Path) -> dict[str, torch.Tensor]:
    """The weights file's tensors, read once with torch's restricted loader (nothing in it can run)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "not a plain tensor file"
        raise UserError(f"{path} is not a plain-tensor Inception weights file ({type(exc).__name__}); "
                        "re-download it") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict of tensors (Inception weights); re-download it")
    return state


EXTRACTORS = {"judge": _build_judge, "inception": _build_inception}


def list_extractors() -> list[str]:
    return sorted(EXTRACTORS)


def build_extractor(name: str, **kw: Any) -> Extractor:
    """Build an extractor by name: `judge` (weights_path= or judge=) or `inception` (weights_path=)."""
    if name not in EXTRACTORS:
        raise UserError(f"unknown feature extractor {name!r}; choose one of {', '.join(list_extractors())}")
    return EXTRACTORS[name](**kw)


def metric_name(kind: str, label: str) -> str:
    """`fd` + `judge` -> `fd_judge`; `fd` + `inception` -> `fid_inception` (the usual name)."""
    kind = METRIC_KINDS[kind]
    if label == "inception":
        return {"fd": "fid", "kd": "kid"}[kind] + "_inception"
    return f"{kind}_{label}"


def metrics_from_features(
    fake: torch.Tensor, real: torch.Tensor, label: str, names: tuple[str, ...] = ("fd", "kd"), seed: int = 0
) -> dict[str, float]:
    """Metrics named by extractor from precomputed features (no second feature pass)."""
    out: dict[str, float] = {}
    for name in names:
        if name not in METRIC_KINDS:
            raise UserError(f"unknown metric {name!r}; choose from fd, kd (fid/kid are accepted aliases)")
        key = metric_name(name, label)
        if METRIC_KINDS[name] == "fd":
            out[key] = frechet_distance(fake, real)
        else:
            kd = kernel_distance(fake, real, seed=seed)
            out[key], out[key + "_std"], out[key + "_subset"] = kd["mean"], kd["std"], kd["subset_size"]
    return out


def compute_metrics(
    fake_uint8: torch.Tensor,
    real_uint8: torch.Tensor,
    names: tuple[str, ...] = ("fd", "kd"),
    extractor: Extractor | ExtractorConfig | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, float]:
    """FD/KD (or FID/KID) between two uint8 image sets [N, C, H, W], named by extractor."""
    if extractor is None:
        raise UserError("metrics need a feature extractor: a judge checkpoint (--judge) or Inception weights")
    if isinstance(extractor, ExtractorConfig):
        extractor = build_extractor(extractor.kind, weights_path=extractor.weights_path, device=device,
                                    batch=extractor.batch)
    fake, real = extractor.features(fake_uint8), extractor.features(real_uint8)
    return metrics_from_features(fake, real, extractor.label, names, seed)
