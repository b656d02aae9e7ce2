"""GanTrainConfig: every knob of `gen train` as one typed, serialisable dataclass.

The CLI turns flags into a dict of overrides, `gen.train.recipes.resolve_config` merges them with
a preset, and the loop only ever reads this object. It is written to the run folder
(`training_options.json`) and into every snapshot, so a run can be resumed and compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stylegan2_ada import check_resolution
from stylegan2_ada.augment import AUGPIPES

from classify.core.configs import Config, setting
from classify.core.errors import UserError
from classify.data.images import FITS, check_fit
from gen.core.errors import as_user_error
from gen.train.presets import list_presets

AUG_MODES = ("ada", "fixed", "diffaug", "none")
ORIENTS = ("auto", "none")
# What the GAN learns from (docs/ENGINE.md, "Recipes"): the rare class alone; one
# class-conditional model on every train class; or pre-training on every train image, then
# fine-tuning on the rare class.
RECIPES = ("minority", "conditional", "transfer")
STAGES = ("main", "pretrain")


def _preset_names() -> list[str]:
    return list_presets()


PRECISIONS = ("fp32", "bf16", "fp16")

# Fields that may differ between a snapshot and the run that resumes it: they change how
# long we train, where/how often we write, or how fast we compute — not what is learned.
RESUMABLE_CHANGES = frozenset(
    {
        "kimg", "snap", "keep", "metric_every", "metrics", "out_dir", "data_dir", "device",
        "compile", "resume", "resume_from", "inception_weights", "judge", "tick_kimg",
        "channels_last", "tf32", "gpus", "budget", "keep_freed_memory",
    }
)


@dataclass
class GanTrainConfig(Config):
    config_name = "training option(s)"

    # --- data ---
    data_dir: str = setting("", "Prepared data folder (classify prepare).", flag="--data", path="dir")
    classes: list[str] = setting(help="Class to learn; repeat for a class-conditional model.", flag="--class",
                                 default_factory=list)
    out_dir: str = setting("", "Run folder (snapshots, grids, metrics).", flag="--out", path="dir")
    res: int = setting(64, "Training resolution (a power of two, 4 to 1024).")
    fit: str = setting("auto", "How non-square images are fitted: crop, pad, stretch, or auto (pad when the "
                       "folder's aspect ratios vary, else crop).", choices=FITS)
    orient: str = setting("auto", "auto: where a class's train images mix portrait and landscape, turn the "
                          "fewer ones by 90 degrees so the GAN learns one layout (gen sample turns its "
                          "samples back in the reals' proportion); none: as they are.", choices=ORIENTS)
    channels: int | None = setting(None, "Image channels the GAN makes (1 or 3; default: the data's own).")
    mirror: bool = setting(False, "Add x-flipped copies of the reals.")
    recipe: str = setting("minority", "What the GAN learns from: the --class alone (minority), a conditional "
                          "model of every train class sampled at --class (conditional), or every train image "
                          "first, then --class with FreezeD (transfer).", choices=RECIPES)
    stage: str = setting("main", "Which stage of the recipe this run is (transfer's first run is 'pretrain'; "
                         "set by the recipe, not by hand).", choices=STAGES)
    pretrain_share: float = setting(0.5, "transfer: share of --kimg / --budget spent pre-training "
                                    "on every image.")
    # --- schedule ---
    preset: str = setting("auto", "Hyper-parameter preset (flags override single fields).",
                          choices=_preset_names)
    kimg: float = setting(25000.0, "Train until this many thousand real images were shown.")
    budget: str | None = setting(None, "Stop after this much training wall time (e.g. 90m, 2h, 45s), with a "
                                 "final snapshot; --resume with a larger budget continues.")
    tick_kimg: float = setting(4.0, "Tick length in kimg (one progress line and metrics.jsonl row per tick).")
    snap: int = setting(50, "Snapshot every N ticks.")
    keep: int = setting(3, "Keep the last K snapshots (plus the best).")
    seed: int = setting(0, "Random seed.")
    # --- optimisation ---
    batch: int = setting(32, "Global batch size (all processes together).")
    lr: float = setting(0.0025, "Adam learning rate of G and D.")
    gamma: float = setting(1.0, "R1 regularisation weight.")
    ema_kimg: float = setting(10.0, "Half-life of the G_ema average, in kimg.")
    ema_rampup: float | None = setting(0.05, "EMA half-life ramp-up: at most this x images seen.")
    style_mixing: float = setting(0.9, "Probability of style mixing per sample.")
    pl_weight: float = setting(2.0, "Path-length regularisation weight (0 = off).")
    pl_batch_shrink: int = setting(2, "Path-length batch = batch // this.")
    pl_decay: float = setting(0.01, "Decay of the path-length running mean.")
    g_reg_interval: int = setting(4, "Run the G regulariser every N steps (lazy regularisation).")
    d_reg_interval: int = setting(16, "Run R1 every N steps (lazy regularisation).")
    freeze_d: int = setting(0, "Freeze the first K discriminator blocks (transfer learning).")
    # --- architecture ---
    z_dim: int = setting(512, "Latent z dimension.")
    w_dim: int = setting(512, "Intermediate latent w dimension.")
    map_layers: int = setting(2, "Mapping network depth.", flag="--map")
    channel_base: int = setting(16384, "Feature maps at a resolution: min(channel_base // res, channel_max).")
    channel_max: int = setting(512, "Upper bound on feature maps per layer.")
    mbstd_group: int = setting(4, "Minibatch-stddev group size.")
    conv_clamp: int | None = setting(256, "Clamp conv outputs to +-this (reduced-precision safety).")
    num_fp16_res: int = setting(4, "Reduced precision on the top N resolutions "
                                "(when --precision is not fp32).")
    # --- augmentation ---
    aug: str = setting("ada", "Augmentation: adaptive p, fixed p, or off.", choices=AUG_MODES)
    augpipe: str = setting("bgc", "ADA augmentation groups: blit (flips, quarter turns, whole-pixel shifts), "
                           "geom (scale, rotation, anisotropy, sub-pixel shifts), color, filter, noise, "
                           "cutout, or the combinations bg, bgc, bgcf, bgcfn, bgcfnc.",
                           choices=tuple(AUGPIPES))
    target: float = setting(0.6, "ADA target for r_t = E[sign(D(real))].")
    p: float = setting(0.0, "Initial (ada) or constant (fixed) augmentation probability.")
    ada_interval: int = setting(4, "Adjust ADA p every N steps.")
    ada_kimg: float = setting(500.0, "ADA speed: p can move from 0 to 1 in this many kimg.")
    # --- metrics ---
    metrics: list[str] = setting(help="Comma list: fid,kid (Inception) or fd,kd (judge features).",
                                 default_factory=list)
    metric_every: int = setting(1, "Compute metrics every N ticks (and at the end); "
                                "a metric tick also snapshots.")
    inception_weights: str | None = setting(None, "Local Inception .pth for FID/KID.", path="file")
    judge: str | None = setting(None, "classify train model.pt: features for FD/KD.", path="file")
    # --- machine ---
    device: str = setting("cpu", "cpu, cuda, cuda:N or auto.", cli_default="auto")
    gpus: int = setting(1, "Processes to launch with torchrun (one per GPU).")
    precision: str = setting("fp32", "Mixed precision of the top resolutions.", choices=PRECISIONS)
    compile: bool = setting(False, "torch.compile the networks.")
    channels_last: bool = setting(False, "channels_last memory format.")
    keep_freed_memory: bool = setting(False, "CPU: keep freed memory in the process for the next step "
                                      "(glibc malloc; no page faults per step).")
    tf32: bool = setting(True, "TF32 matmuls/convolutions on CUDA.")
    # --- resume / transfer ---
    resume: str | None = setting(None, "Continue a run exactly: RUN_DIR, a snapshot .pt, or 'latest' "
                                 "(in --out).")
    resume_from: str | None = setting(None, "Initialise from a .pt/.safetensors/.pkl file or an http(s) URL "
                                      "of one (transfer: its architecture and ADA p are adopted).",
                                      path="file")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GanTrainConfig:
        """The base's reading, with tuples (click's repeated options) as lists, then validated."""
        cfg = super().from_dict({k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Reject values that would fail later (or silently do the wrong thing)."""
        # The engine's own rule, so that what passes here (and at --dry-run) can be built.
        with as_user_error():
            check_resolution(self.res, what="--res")
        _check_choice("--aug", self.aug, AUG_MODES)
        _check_choice("--augpipe", self.augpipe, tuple(AUGPIPES))
        _check_choice("--precision", self.precision, PRECISIONS)
        check_fit(self.fit)
        _check_choice("--orient", self.orient, ORIENTS)
        if self.channels not in (None, 1, 3):
            raise UserError(f"--channels {self.channels} must be 1 or 3")
        if self.batch < 1:
            raise UserError(f"--batch {self.batch} must be >= 1")
        self._validate_numbers()
        if self.batch % self.gpus:
            raise UserError(f"--batch {self.batch} must be a multiple of the number of GPUs/processes "
                            f"({self.gpus})")
        self._validate_mbstd()
        if not (self.kimg > 0 and self.tick_kimg > 0 and math.isfinite(self.kimg)):
            raise UserError(f"--kimg ({self.kimg}) and tick length ({self.tick_kimg}) must be positive")
        if self.snap < 1 or self.keep < 1 or self.metric_every < 1:
            raise UserError("--snap, --keep and --metric-every must be >= 1")
        if not 0.0 <= self.p <= 1.0:
            raise UserError(f"--p {self.p} must be in [0, 1]")
        if len(set(self.classes)) != len(self.classes):
            raise UserError(f"--class given twice: {self.classes}; list each class once")
        _check_choice("--recipe", self.recipe, RECIPES)
        _check_choice("--stage", self.stage, STAGES)
        if self.stage == "pretrain" and self.recipe != "transfer":
            raise UserError(f"--stage pretrain belongs to --recipe transfer, not {self.recipe}")
        if not 0.0 < self.pretrain_share < 1.0:
            raise UserError(f"--pretrain-share {self.pretrain_share} must lie in (0, 1)")
        self.budget_seconds  # noqa: B018 - parses --budget now, so --dry-run catches a typo
        self._validate_metrics()

    def _validate_numbers(self) -> None:
        """Finite numbers in their ranges (NaN passes every `<` test, so each rule states what it allows)."""
        for flag, field, rule in _NUMBER_RULES:
            value = getattr(self, field)
            finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if value is None and rule.endswith("(or unset)"):
                continue
            if not (finite and _RULE_TESTS[rule](value)):
                raise UserError(f"{flag} {value} {rule}")

    def _validate_mbstd(self) -> None:
        # D sees each process's whole batch at once, and minibatch-std groups it into groups of
        # min(mbstd_group, batch); a remainder would fail at the first D call with a raw error.
        per_rank = self.batch // self.gpus
        group = min(self.mbstd_group, per_rank)
        if self.mbstd_group < 1 or per_rank % group:
            raise UserError(f"--mbstd-group {self.mbstd_group} does not divide the per-process batch "
                            f"{per_rank} (--batch {self.batch} over {self.gpus} process(es)); use a batch "
                            f"that is a multiple of {max(group, 1)} or a --mbstd-group that divides "
                            f"{per_rank}")

    def _validate_metrics(self) -> None:
        # Here, not when the metric runner is built, so --dry-run catches them and a bad name
        # does not leave a half-made run folder behind.
        if not self.metrics:
            return
        from gen.core.metrics import METRIC_KINDS  # noqa: PLC0415 — loads torch-fidelity; the CLI reads configs at start-up

        unknown = [m for m in self.metrics if m.strip().lower() not in METRIC_KINDS]
        if unknown:
            raise UserError(f"unknown --metrics {', '.join(unknown)}; choose from {', '.join(METRIC_KINDS)}")
        if not (self.judge or self.inception_weights):
            raise UserError(f"--metrics {','.join(self.metrics)} needs features: --judge MODEL.pt from "
                            "`classify train` or --inception-weights PATH (an offline Inception .pth)")

    @property
    def budget_seconds(self) -> float | None:
        return None if self.budget is None else parse_duration(self.budget, "--budget")


_RULE_TESTS = {
    "must be a positive number": lambda v: v > 0,
    "must be a positive number (or unset)": lambda v: v > 0,
    "must be >= 0": lambda v: v >= 0,
    "must be >= 1": lambda v: v >= 1,
    "must lie in [0, 1]": lambda v: 0 <= v <= 1,
}
# (flag, field, rule): checked by GanTrainConfig._validate_numbers.
_NUMBER_RULES = [
    ("--gpus", "gpus", "must be >= 1"),
    ("--lr", "lr", "must be a positive number"),
    ("--gamma", "gamma", "must be >= 0"),
    ("--ema-kimg", "ema_kimg", "must be a positive number"),
    ("--ema-rampup", "ema_rampup", "must be a positive number (or unset)"),
    ("--style-mixing", "style_mixing", "must lie in [0, 1]"),
    ("--pl-weight", "pl_weight", "must be >= 0"),
    ("--pl-decay", "pl_decay", "must lie in [0, 1]"),
    ("--pl-batch-shrink", "pl_batch_shrink", "must be >= 1"),
    ("--g-reg-interval", "g_reg_interval", "must be >= 1"),
    ("--d-reg-interval", "d_reg_interval", "must be >= 1"),
    ("--freeze-d", "freeze_d", "must be >= 0"),
    ("--z-dim", "z_dim", "must be >= 1"),
    ("--w-dim", "w_dim", "must be >= 1"),
    ("--map", "map_layers", "must be >= 1"),
    ("--channel-base", "channel_base", "must be >= 1"),
    ("--channel-max", "channel_max", "must be >= 1"),
    ("--conv-clamp", "conv_clamp", "must be a positive number (or unset)"),
    ("--num-fp16-res", "num_fp16_res", "must be >= 0"),
    ("--target", "target", "must lie in [0, 1]"),
    ("--ada-interval", "ada_interval", "must be >= 1"),
    ("--ada-kimg", "ada_kimg", "must be a positive number"),
]

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, flag: str) -> float:
    """'90m' -> 5400.0; units s, m, h; a bare number is seconds."""
    value = str(text).strip().lower()
    unit = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = float("nan")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise UserError(f"{flag} {text!r} is not a duration; use e.g. 90m, 2h, 45s or 5400 (seconds)")
    return seconds


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{flag} {value!r} is not one of {', '.join(choices)}")


# Options added after runs were already stored: a stored config without the key trained as this
# value, so it is read so (the new default would silently change a resumed run).
STORED_BEFORE = {"orient": "none", "augpipe": "bgc"}


def as_stored(config: dict[str, Any]) -> dict[str, Any]:
    """A config read from a run folder or snapshot, with the options it predates filled in as it trained."""
    return {**STORED_BEFORE, **config}


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Fields (outside RESUMABLE_CHANGES) whose values differ, as 'name: old -> new'; `old` is a
    stored config (`as_stored`)."""
    old = as_stored(old)
    out = []
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_CHANGES:
            continue
        if old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return out


def check_resume_config(old: dict[str, Any], new: dict[str, Any], snapshot: Any) -> None:
    """The one check that a resumed run keeps its snapshot's training options."""
    diffs = config_differences(old, new)
    if diffs:
        raise UserError(f"--resume {snapshot}: these options differ from the snapshot's config: "
                        f"{'; '.join(diffs)} — drop those flags to continue the run (only --kimg, --snap, "
                        "--out, --device ... may change), or start a new run with --resume-from")
