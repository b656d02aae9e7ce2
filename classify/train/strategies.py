"""Balancing / augmentation strategy registry. Names compose with '+': `oversample+classic`.

A strategy is a small recipe (`Strategy`) that the trainer reads at four hook points:
which batches to draw (sampler), which loss (class weights, focal), what to do to a batch
on the device (classic augmentation, mixup/cutmix), and which extra train images to add
(synthetic samples from a `gen sample` folder). Each registry entry switches on one part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from classify.core.errors import UserError


@dataclass
class Strategy:
    name: str = "baseline"
    balanced_sampler: bool = False  # oversample: class-balanced batches via a weighted sampler
    class_weights: bool = False  # inverse-frequency weights in the loss
    focal_gamma: float = 0.0  # > 0: focal loss
    classic: bool = False  # kornia batch augmentation
    mixes: list[str] = field(default_factory=list)  # "mixup" / "cutmix"; one is picked per batch
    synthetic: str | None = None  # None | "all" | "accepted"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _baseline(s: Strategy) -> None:
    pass


def _class_weight(s: Strategy) -> None:
    s.class_weights = True


def _oversample(s: Strategy) -> None:
    s.balanced_sampler = True


def _focal(s: Strategy) -> None:
    s.focal_gamma = 2.0


def _classic(s: Strategy) -> None:
    s.classic = True


def _mixup(s: Strategy) -> None:
    s.mixes.append("mixup")


def _cutmix(s: Strategy) -> None:
    s.mixes.append("cutmix")


def _synthetic(which: str) -> Callable[[Strategy], None]:
    def part(s: Strategy) -> None:
        if s.synthetic is not None:
            raise UserError("strategies 'gan' and 'gan_filtered' exclude each other; use one of them")
        s.synthetic = which

    return part


_PARTS: dict[str, Callable[[Strategy], None]] = {
    "baseline": _baseline,
    "class_weight": _class_weight,
    "oversample": _oversample,
    "focal": _focal,
    "classic": _classic,
    "mixup": _mixup,
    "cutmix": _cutmix,
    "gan": _synthetic("all"),
    "gan_filtered": _synthetic("accepted"),
}


def list_strategies() -> list[str]:
    return list(_PARTS)


def build_strategy(name: str) -> Strategy:
    """Parse 'a+b+c' into one Strategy; unknown or repeated parts are user errors."""
    parts = [p.strip() for p in name.split("+")]
    if not name or any(not p for p in parts):
        raise UserError(f"empty strategy name in {name!r}; "
                        f"valid strategies: {', '.join(_PARTS)} (combine with '+')")
    if len(set(parts)) != len(parts):
        raise UserError(f"strategy {name!r} repeats a part; list each once")
    strategy = Strategy(name=name)
    for part in parts:
        if part not in _PARTS:
            raise UserError(f"unknown strategy {part!r}; "
                            f"valid strategies: {', '.join(_PARTS)} (combine with '+')")
        _PARTS[part](strategy)
    return strategy
