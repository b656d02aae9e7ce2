"""The ablation's design: the grid of cells, their stable ids, and deterministic shards.

A cell is one (strategy, model, seed, minority fraction, synthetic ratio) training run; for
strategies that add synthetic images also which classes get them, their loss weight and their
schedule. Only those strategies are multiplied by the synthetic axes; for the others they are
meaningless, and repeating them would only burn compute and inflate n.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from classify.core.errors import UserError

# Strategy components that draw images from a `gen sample` folder (see ARCHITECTURE.md).
SYNTHETIC_COMPONENTS = ("gan", "gan_filtered")

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.+\-]+$")


def uses_synthetic(strategy: str) -> bool:
    """True when any '+'-joined component of `strategy` adds GAN samples."""
    return any(part in SYNTHETIC_COMPONENTS for part in strategy.split("+"))


def fmt_number(x: float) -> str:
    """Short, stable text for ratios and fractions: 1.0 -> '1', 0.25 -> '0.25'."""
    return f"{float(x):g}"


@dataclass(frozen=True)
class Cell:
    strategy: str
    model: str
    seed: int
    minority_fraction: float
    synthetic_ratio: float | None  # None for strategies without synthetic images
    # The other synthetic axes; their defaults leave ids and arm names as they were before them.
    synthetic_classes: str = "minority"
    synthetic_weight: float = 1.0
    synthetic_schedule: str = "mixed"

    def _variant(self) -> list[str]:
        """The non-default synthetic settings, as short tags: 'all', 'w0.5', 'warmup'."""
        tags = []
        if self.synthetic_classes != "minority":
            tags.append(self.synthetic_classes)
        if self.synthetic_weight != 1.0:
            tags.append(f"w{fmt_number(self.synthetic_weight)}")
        if self.synthetic_schedule != "mixed":
            tags.append(self.synthetic_schedule)
        return tags

    @property
    def id(self) -> str:
        # Readable on purpose: people grep, delete and rerun single cells by name.
        parts = [self.strategy, self.model, f"frac{fmt_number(self.minority_fraction)}"]
        if self.synthetic_ratio is not None:
            parts.append(f"ratio{fmt_number(self.synthetic_ratio)}")
        parts += self._variant()
        parts.append(f"seed{self.seed}")
        return "__".join(parts)

    @property
    def arm(self) -> str:
        """The compared treatment, without the seed: 'gan_filtered@2', 'gan@1/all/w0.5' or 'oversample'."""
        if self.synthetic_ratio is None:
            return self.strategy
        return "/".join([f"{self.strategy}@{fmt_number(self.synthetic_ratio)}", *self._variant()])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> Cell:
        ratio = d.get("synthetic_ratio")
        return cls(
            strategy=str(d["strategy"]), model=str(d["model"]), seed=int(d["seed"]),
            minority_fraction=float(d["minority_fraction"]),
            synthetic_ratio=None if ratio is None else float(ratio),
            synthetic_classes=str(d.get("synthetic_classes", "minority")),
            synthetic_weight=float(d.get("synthetic_weight", 1.0)),
            synthetic_schedule=str(d.get("synthetic_schedule", "mixed")),
        )


@dataclass(frozen=True)
class SyntheticAxes:
    """The grid's synthetic-data axes (each crossed with the others for GAN strategies)."""

    ratios: Sequence[float] = (1.0,)
    classes: Sequence[str] = ("minority",)
    weights: Sequence[float] = (1.0,)
    schedules: Sequence[str] = ("mixed",)

    def variants(self) -> list[tuple[float, str, float, str]]:
        return [(float(r), c, float(w), s) for r in self.ratios for c in self.classes for w in self.weights
                for s in self.schedules]


def build_grid(
    strategies: Sequence[str],
    models: Sequence[str],
    seeds: Sequence[int],
    synthetic: SyntheticAxes | Sequence[float],
    minority_fractions: Sequence[float],
) -> list[Cell]:
    """Every cell, in a fixed order (fraction, seed, model, strategy, synthetic variant).
    `synthetic` is the synthetic axes, or just the list of ratios.

    Seeds vary slowly so that an interrupted run has complete seeds for many strategies,
    which is what paired comparisons need.
    """
    axes = synthetic if isinstance(synthetic, SyntheticAxes) else SyntheticAxes(ratios=tuple(synthetic))
    cells: list[Cell] = []
    for fraction in minority_fractions:
        for seed in seeds:
            for model in models:
                for strategy in strategies:
                    if not uses_synthetic(strategy):
                        cells.append(Cell(strategy, model, int(seed), float(fraction), None))
                        continue
                    for ratio, classes, weight, schedule in axes.variants():
                        cells.append(Cell(strategy, model, int(seed), float(fraction), ratio, classes, weight,
                                          schedule))
    ids = [c.id for c in cells]
    bad = [i for i in ids if not _SAFE_ID.match(i)]
    if bad:
        raise UserError(f"cell id {bad[0]!r} has characters unsafe in a file name; "
                        "rename the strategy or model")
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"the grid lists cell {dup!r} twice; remove the repeated value from the config")
    return cells


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise UserError(f"shard {self.index}/{self.count} is out of range; "
                            "use --shard i/n with 0 <= i < n")

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise UserError(f"--shard {text!r} is not of the form i/n (e.g. 0/4)")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Shard | None:
        """The SLURM array slice, or None outside an array job.

        Arrays may start at any index (`--array=1-8`), so the task id is taken relative
        to SLURM_ARRAY_TASK_MIN.
        """
        if "SLURM_ARRAY_TASK_ID" not in environ:
            return None
        try:
            task = int(environ["SLURM_ARRAY_TASK_ID"])
            count = int(environ["SLURM_ARRAY_TASK_COUNT"])
            first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        except (KeyError, ValueError) as exc:
            raise UserError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is missing "
                            "or not a number; pass --shard i/n explicitly") from exc
        return cls(task - first, count)

    def select(self, cells: Sequence[Cell]) -> list[Cell]:
        """Round-robin over the grid order: every cell in exactly one shard, sizes differ by <= 1."""
        return [c for i, c in enumerate(cells) if i % self.count == self.index]
