"""TrainConfig: every knob of `gen train` as one typed, serialisable dataclass.

The CLI turns flags into a dict of overrides, `gen.presets.resolve_config` merges them with
a preset, and the loop only ever reads this object. It is written to the run folder
(`training_options.json`) and into every snapshot, so a run can be resumed and compared.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from classify.configs import check_known_keys
from classify.errors import UserError

AUG_MODES = ("ada", "fixed", "none")
PRECISIONS = ("fp32", "bf16", "fp16")
FITS = ("crop", "pad", "stretch")

# Fields that may differ between a snapshot and the run that resumes it: they change how
# long we train, where/how often we write, or how fast we compute — not what is learned.
RESUMABLE_CHANGES = frozenset(
    {
        "kimg", "snap", "keep", "metric_every", "metrics", "out_dir", "data_dir", "device",
        "compile", "resume", "resume_from", "inception_weights", "judge", "tick_kimg",
        "channels_last", "tf32", "gpus",
    }
)


@dataclass
class TrainConfig:
    # --- data ---
    data_dir: str = ""
    classes: list[str] = field(default_factory=list)
    out_dir: str = ""
    res: int = 64
    fit: str = "crop"
    mirror: bool = False
    # --- schedule ---
    preset: str = "auto"
    kimg: float = 25000.0
    tick_kimg: float = 4.0  # one tick = progress line + metrics.jsonl row
    snap: int = 50  # snapshot every N ticks
    keep: int = 3  # keep the last K snapshots (+ the best)
    seed: int = 0
    # --- optimisation ---
    batch: int = 32  # global batch over all ranks
    lr: float = 0.0025
    gamma: float = 1.0  # R1 weight
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    style_mixing: float = 0.9
    pl_weight: float = 2.0
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    g_reg_interval: int = 4
    d_reg_interval: int = 16
    freeze_d: int = 0
    # --- architecture ---
    z_dim: int = 512
    w_dim: int = 512
    map_layers: int = 2
    channel_base: int = 16384
    channel_max: int = 512
    mbstd_group: int = 4
    conv_clamp: int | None = 256
    num_fp16_res: int = 4  # reduced precision on the top N resolutions; only when precision != fp32
    # --- augmentation ---
    aug: str = "ada"
    target: float = 0.6
    p: float = 0.0
    ada_interval: int = 4
    ada_kimg: float = 500.0
    # --- metrics ---
    metrics: list[str] = field(default_factory=list)
    metric_every: int = 1  # in ticks; a metric tick also writes a snapshot so best.json names a file
    inception_weights: str | None = None
    judge: str | None = None
    # --- machine ---
    device: str = "cpu"
    gpus: int = 1
    precision: str = "fp32"
    compile: bool = False
    channels_last: bool = False
    tf32: bool = True
    # --- resume / transfer ---
    resume: str | None = None
    resume_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        check_known_keys(cls, d, "training option(s)")
        cfg = cls(**{k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Reject values that would fail later (or silently do the wrong thing)."""
        if self.res < 4 or self.res & (self.res - 1):
            raise UserError(f"--res {self.res} is not a power of two >= 4; use e.g. 32, 64, 128, 256")
        _check_choice("--aug", self.aug, AUG_MODES)
        _check_choice("--precision", self.precision, PRECISIONS)
        _check_choice("--fit", self.fit, FITS)
        if self.batch < 1:
            raise UserError(f"--batch {self.batch} must be >= 1")
        if self.gpus < 1 or self.batch % self.gpus:
            raise UserError(f"--batch {self.batch} must be a multiple of the number of GPUs/processes ({self.gpus})")
        self._validate_mbstd()
        if not (self.kimg > 0 and self.tick_kimg > 0 and math.isfinite(self.kimg)):
            raise UserError(f"--kimg ({self.kimg}) and tick length ({self.tick_kimg}) must be positive")
        if self.snap < 1 or self.keep < 1 or self.metric_every < 1:
            raise UserError("--snap, --keep and --metric-every must be >= 1")
        if not 0.0 <= self.p <= 1.0:
            raise UserError(f"--p {self.p} must be in [0, 1]")
        if len(set(self.classes)) != len(self.classes):
            raise UserError(f"--class given twice: {self.classes}; list each class once")
        self._validate_metrics()

    def _validate_mbstd(self) -> None:
        # D sees each process's whole batch at once, and minibatch-std groups it into groups of
        # min(mbstd_group, batch); a remainder would fail at the first D call with a raw error.
        per_rank = self.batch // self.gpus
        group = min(self.mbstd_group, per_rank)
        if self.mbstd_group < 1 or per_rank % group:
            raise UserError(f"--mbstd-group {self.mbstd_group} does not divide the per-process batch {per_rank} "
                            f"(--batch {self.batch} over {self.gpus} process(es)); use a batch that is a multiple "
                            f"of {max(group, 1)} or a --mbstd-group that divides {per_rank}")

    def _validate_metrics(self) -> None:
        # Here, not when the metric runner is built, so --dry-run catches them and a bad name
        # does not leave a half-made run folder behind.
        if not self.metrics:
            return
        from gen.metrics import METRIC_KINDS

        unknown = [m for m in self.metrics if m.strip().lower() not in METRIC_KINDS]
        if unknown:
            raise UserError(f"unknown --metrics {', '.join(unknown)}; choose from {', '.join(METRIC_KINDS)}")
        if not (self.judge or self.inception_weights):
            raise UserError(f"--metrics {','.join(self.metrics)} needs features: --judge MODEL.pt from `classify "
                            "train` or --inception-weights PATH (an offline Inception .pth)")

    @property
    def conditional(self) -> bool:
        return len(self.classes) > 1


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{flag} {value!r} is not one of {', '.join(choices)}")


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Fields (outside RESUMABLE_CHANGES) whose values differ, as 'name: old -> new'."""
    out = []
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_CHANGES:
            continue
        if old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return out
