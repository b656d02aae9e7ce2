"""`ClassifierTrainConfig`: every knob of one classifier training run, with its CLI help.

`classify train` builds its options from these fields (`classify.core.configs.config_options`)
and the ablation takes every study-wide field from here too, so a new classifier setting is
one field: its default, help and checks live nowhere else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from classify.core.configs import Config, setting
from classify.core.errors import UserError
from classify.data.images import FITS, check_fit
from classify.model.models import model_spec

OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("cosine", "plateau")
CLASSIC_LEVEL_NAMES = ("mild", "medium", "strong")  # the keys of classify.train.augment.CLASSIC_LEVELS
HEADS = ("linear", "logreg", "svm")
# Which classes get synthetic images: the minority only, or every class at the same share of its
# own train images (so that "looks generated" carries no label).
SYNTHETIC_CLASSES = ("minority", "all")
# mixed: synthetic images in every epoch; warmup: real + synthetic first, real only for the final
# share of the epochs (SYNTHETIC_REAL_SHARE), so training ends on the real distribution. The kept
# model is still the best validation epoch, which may come from the mixed phase (and --patience
# may stop before the real-only epochs).
SYNTHETIC_SCHEDULES = ("mixed", "warmup")
SYNTHETIC_REAL_SHARE = 1 / 3


@dataclass
class ClassifierTrainConfig(Config):
    config_name = "ClassifierTrainConfig key(s)"
    renamed = {"model": "model_name"}  # config.json and model.pt before the field was model_name

    data_dir: str = setting("data", "Prepared data folder.", flag="--data", path="dir")
    out_dir: str = setting("runs/classify", "Run folder to write.", flag="--out", path="dir")
    # Not a click.Choice: the registry's own check gives the one-line error listing the models.
    model_name: str = setting("resnet18", "Registry model (see `classify models`).", flag="--model")
    strategy: str = setting("baseline", "Strategy, parts joined by '+' (see `classify models`).")
    epochs: int = setting(10, "Passes over the train split.")
    res: int = setting(128, "Training resolution (square); 64,128 trains progressively (res_schedule).")
    batch: int = setting(64, "Images per optimizer step.")
    lr: float = setting(1e-3, "Peak learning rate.")
    seed: int = setting(0, "Seeds init, batch order, augmentation and the minority subsample.")
    device: str = setting("cpu", "cpu, cuda, cuda:N or auto.", cli_default="auto")
    synthetic_dir: str | None = setting(None, "`gen sample` folder for the gan / gan_filtered strategies.",
                                        flag="--synthetic", path="dir")
    synthetic_ratio: float = setting(1.0, "Synthetic images added = round(ratio x real minority train "
                                     "images) (with --synthetic-classes all: per class, ratio x that "
                                     "class's train images).")
    synthetic_classes: str = setting("minority", "Classes that get synthetic images: the minority only, "
                                     "or all (each at the same share of its own train images).",
                                     choices=SYNTHETIC_CLASSES)
    synthetic_exclude: str | None = setting(None, "Samples ruled out by hand: a file with one seed or "
                                            "sample file per line (the sample browser's exclude.txt).",
                                            path="file")
    synthetic_weight: float = setting(1.0, "Loss weight of a synthetic image "
                                      "(0 < W <= 1; real images weigh 1).")
    synthetic_schedule: str = setting("mixed", "mixed: synthetic images in every epoch; warmup: real + "
                                      "synthetic first, real only for the last third of the epochs.",
                                      choices=SYNTHETIC_SCHEDULES)
    minority_class: str | None = setting(None, "Class to treat as minority (default: rarest in train).")
    minority_fraction: float = setting(1.0, "Keep this fraction of the real minority train images (seeded).")
    deterministic: bool = setting(False, "Deterministic kernels (slower; for exact reruns).")
    pretrained: str | None = setting(None, "Backbone weights: 'imagenet' (downloaded once into timm's or "
                                     "torchvision's cache) or a local state-dict file.", path="file")
    warmup_head_epochs: int = setting(0, "Train only the head for the first N epochs (backbone frozen), "
                                      "then all.")
    backbone_lr_mult: float = setting(1.0, "Backbone learning rate = --lr x this (fine-tuning: e.g. 0.1).")
    res_schedule: list[int] = setting(help="Progressive resizing: resolutions trained in turn over equal "
                                      "shares of the epochs, the last being --res "
                                      "(`--res 64,128` sets both).",
                                      default_factory=list)
    lr_schedule: str = setting("cosine", "cosine decay after warm-up, or plateau (halve the LR when val "
                               "does not improve for 2 epochs).", choices=LR_SCHEDULES)
    classic: str = setting("mild", "Strength of the classic strategy's augmentation "
                           "(augment.CLASSIC_LEVELS).", choices=CLASSIC_LEVEL_NAMES)
    head: str = setting("linear", "Classifier head: the network's own (linear), or a class-balanced "
                        "scikit-learn logistic regression or linear SVM refit on the trained network's "
                        "features.", choices=HEADS)
    channels: int | None = setting(None, "Input channels (default: the data's own; 1 if all grayscale).")
    fit: str = setting("auto", "How non-square images become square: crop, pad, stretch, or auto "
                       "(pad when the folder's aspect ratios vary, else crop: classify.data.aspect).",
                       choices=FITS)
    optimizer: str = setting("adamw", "adamw, or sgd (momentum 0.9, nesterov).", choices=OPTIMIZERS)
    weight_decay: float = setting(0.05, "Decoupled weight decay.")
    warmup_epochs: float = setting(1.0, "Linear LR warm-up length.")
    label_smoothing: float = setting(0.0, "Label smoothing of the targets.")
    target_recall: float | None = setting(None, "Choose the threshold reaching this val recall "
                                          "(default: max F1).")
    patience: int = setting(0, "Early-stop patience in epochs; 0 = off.")
    aug_p: float = setting(0.5, "Probability of each classic augmentation op.")
    mixup_alpha: float = setting(0.4, "Beta(alpha, alpha) of mixup.")
    cutmix_alpha: float = setting(1.0, "Beta(alpha, alpha) of cutmix.")
    bn_recalibrate: int = setting(512, "Clean train images to re-estimate BatchNorm statistics per epoch; "
                                  "0 = off.")
    amp: bool = setting(True, "bf16 autocast (CUDA only).")
    # Opt-in: fast where the CPU has native bf16 (AVX512-BF16, AMX), much slower where it is
    # emulated, and it changes results slightly (see docs/BENCHMARKS.md).
    cpu_bf16: bool = setting(False, "bf16 autocast on the CPU too: faster only with native bf16 "
                             "(AVX512-BF16, AMX).")
    channels_last: bool = setting(True, "channels_last memory format "
                                  "(on CUDA, and on the CPU with --cpu-bf16).")
    compile: bool = setting(False, "torch.compile the model (CUDA only).")
    progress: bool = setting(True, "Progress bar.")

    # Fields an ablation sets per cell (or from its own options); every other field is a
    # study-wide training setting that `classify ablate` takes as a flag or TOML key.
    PER_CELL = ("data_dir", "out_dir", "model_name", "strategy", "seed", "device", "synthetic_dir",
                "synthetic_ratio", "synthetic_classes", "synthetic_weight", "synthetic_schedule",
                "minority_class", "minority_fraction", "progress")
    # Settings that change only the speed, never what is learned.
    SPEED_ONLY = ("channels_last", "compile")

    @classmethod
    def study_fields(cls) -> list[str]:
        """The study-wide settings, in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.name not in cls.PER_CELL]

    @classmethod
    def default(cls, name: str) -> Any:
        return getattr(cls(), name)

    def validate(self) -> None:
        for flag, value, low in (("--res", self.res, 8), ("--batch", self.batch, 2),
                                 ("--epochs", self.epochs, 1)):
            if value < low:
                raise UserError(f"{flag} {value} must be >= {low}")
        # An unknown name, or a res this network cannot take (too big, too small).
        model_spec(self.model_name, self.res)
        # Written as "not (ok)" so that NaN, which fails every comparison, is refused too.
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr {self.lr} must be a finite number > 0")
        if not (self.weight_decay >= 0 and 0.0 <= self.aug_p <= 1.0 and self.warmup_epochs >= 0):
            raise UserError(f"--weight-decay ({self.weight_decay}) and "
                            f"--warmup-epochs ({self.warmup_epochs}) must be >= 0, "
                            f"--aug-p ({self.aug_p}) in [0, 1]")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; use {' or '.join(OPTIMIZERS)}")
        check_fit(self.fit)
        for name, value, allowed in (("--lr-schedule", self.lr_schedule, LR_SCHEDULES),
                                     ("--classic", self.classic, CLASSIC_LEVEL_NAMES),
                                     ("--head", self.head, HEADS)):
            if value not in allowed:
                raise UserError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        if self.res_schedule:
            if self.res_schedule[-1] != self.res or len(self.res_schedule) > self.epochs:
                raise UserError(f"--res {','.join(map(str, self.res_schedule))}: the last resolution is "
                                f"the model's (--res {self.res}) and each needs at least one of the "
                                f"{self.epochs} epochs")
            for r in self.res_schedule:
                model_spec(self.model_name, r)
        if not 0 <= self.warmup_head_epochs < self.epochs:
            raise UserError(f"--warmup-head-epochs {self.warmup_head_epochs} must be >= 0 "
                            f"and below --epochs {self.epochs}")
        if not self.backbone_lr_mult > 0:
            raise UserError(f"--backbone-lr-mult {self.backbone_lr_mult} must be > 0")
        if self.target_recall is not None and not 0.0 < self.target_recall <= 1.0:
            raise UserError(f"--target-recall must be in (0, 1], got {self.target_recall}")
        if not self.synthetic_ratio >= 0:
            raise UserError(f"--synthetic-ratio must be >= 0, got {self.synthetic_ratio}")
        check_synthetic_settings(self.synthetic_classes, self.synthetic_weight, self.synthetic_schedule)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")


def check_synthetic_settings(classes: str, weight: float, schedule: str) -> None:
    """The one rule for the synthetic-data settings (the trainer and the ablation's axes)."""
    if classes not in SYNTHETIC_CLASSES:
        raise UserError(f"--synthetic-classes {classes!r} is not one of {', '.join(SYNTHETIC_CLASSES)}")
    if not (isinstance(weight, (int, float)) and 0.0 < weight <= 1.0):
        raise UserError(f"--synthetic-weight {weight} must lie in (0, 1]")
    if schedule not in SYNTHETIC_SCHEDULES:
        raise UserError(f"--synthetic-schedule {schedule!r} is not one of {', '.join(SYNTHETIC_SCHEDULES)}")


def real_only_epochs(epochs: int, schedule: str) -> int:
    """How many final epochs train on real images only: none for mixed; for warmup the last
    third (at least one, and never all of them)."""
    if schedule != "warmup" or epochs < 2:
        return 0
    return min(epochs - 1, max(1, round(epochs * SYNTHETIC_REAL_SHARE)))


def resolution_settings(value: Any) -> dict[str, Any]:
    """`--res` as typed: 128 -> {res: 128, res_schedule: []}; "64,128" or [64, 128] ->
    {res: 128, res_schedule: [64, 128]} (progressive resizing, the last is the model's)."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
    try:
        stages = [int(str(v).strip()) for v in items if str(v).strip()]
    except ValueError:
        raise UserError(f"--res {value!r}: "
                        "give a resolution (128) or a progressive schedule (64,128)") from None
    if not stages:
        raise UserError("--res is empty; give a resolution such as 128")
    return {"res": stages[-1], "res_schedule": stages if len(stages) > 1 else []}
