"""Assemble the tensors a training run uses: real train (optionally a minority subset),
synthetic extras appended to TRAIN only, and the real validation split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from classify.core.errors import UserError
from classify.data.dataset import open_prepared
from classify.train.synthetic import (
    choose_synthetic,
    load_synthetic,
    read_exclude_list,
    read_images,
    refuse_held_out,
)


@dataclass
class ClassifierTrainData:
    classes: list[str]
    positive: int  # index of the minority / defect class
    in_chans: int
    x_train: torch.Tensor  # uint8 [N, C, R, R], real (+ synthetic at the end)
    y_train: torch.Tensor  # int64 [N]
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_train_real: int  # the first n_train_real rows of x_train are real; synthetic rows follow
    n_train_synthetic: int = 0
    synthetic_per_class: dict[str, int] = field(default_factory=dict)
    synthetic_excluded: int = 0  # samples of the pool left out by --synthetic-exclude
    train_paths: list[str] = field(default_factory=list)  # real train images actually used
    synthetic_files: list[str] = field(default_factory=list)
    manifest_hash: str = ""  # of the prepared folder; stored in model.pt so eval can spot other data
    fit: str = "crop"  # how non-square images became square (the resolved --fit)


def choose_minority(counts: list[int], classes: list[str], minority_class: str | None, data_dir) -> int:
    """Index of the minority class: the named one, or the rarest class present in train
    (`counts`, one per class; ties: the first in sorted order). The trainer and the ablation
    both ask this one function, so they always agree on which class is rare."""
    if minority_class is not None:
        if minority_class not in classes:
            raise UserError(f"minority class {minority_class!r} is not in {data_dir} "
                            f"(classes: {', '.join(classes)}); fix --minority-class")
        return classes.index(minority_class)
    present = [i for i, n in enumerate(counts) if n > 0] or list(range(len(classes)))
    return min(present, key=lambda i: (counts[i], i))


def kept_minority_count(n_minority: int, fraction: float) -> int:
    """Real minority train images a run keeps at `fraction` (at least one). The trainer's
    subsample and the ablation's leak guard both use it, so the guard refuses exactly the
    generators that saw more real minority images than the run."""
    if fraction >= 1.0 or n_minority == 0:
        return n_minority
    return max(1, int(round(fraction * n_minority)))


def synthetic_count(ratio: float, n_real_minority: int) -> int:
    """Synthetic images a gan/gan_filtered run adds: round(ratio x real minority train images kept)."""
    return int(round(ratio * n_real_minority))


def subsample_minority(paths: list[Path], labels: torch.Tensor, positive: int, fraction: float,
                       seed: int) -> np.ndarray:
    """Indices of the train rows to keep: all majority rows plus a seeded fraction of minority.

    The choice depends only on (minority file paths, fraction, seed), never on the strategy,
    so every strategy in an ablation cell sees exactly the same real images.
    """
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"--minority-fraction must be in (0, 1], got {fraction}")
    lab = labels.numpy()
    minority = [i for i in range(len(lab)) if lab[i] == positive]
    keep_n = kept_minority_count(len(minority), fraction)
    if keep_n == len(minority):
        return np.arange(len(lab))
    minority.sort(key=lambda i: str(paths[i]))  # order-independent of manifest row order
    order = np.random.default_rng(seed).permutation(len(minority))[:keep_n]
    kept = {minority[i] for i in order}
    return np.array([i for i in range(len(lab)) if lab[i] != positive or i in kept], dtype=np.int64)


def _check_two_classes(labels: torch.Tensor, classes: list[str], split: str, data_dir) -> None:
    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    missing = [c for c, n in zip(classes, counts) if n == 0]
    if len(classes) - len(missing) < 2:
        held = ", ".join(f"{n} {c}" for c, n in zip(classes, counts))
        fix = "a larger --val fraction" if split == "val" else "smaller --val/--test fractions"
        raise UserError(f"the {split} split of {data_dir} has no {' or '.join(missing)} images ({held}), so "
                        f"ROC-AUC and AP are undefined; add images of that class or re-prepare with {fix}")


def load_classifier_train_data(cfg, synthetic_mode: str | None) -> ClassifierTrainData:
    """Read the prepared folder per `cfg` (a ClassifierTrainConfig) into in-memory tensors."""
    data = open_prepared(cfg.data_dir)
    classes = list(data.classes)
    train, val = data.select(split="train"), data.select(split="val")
    _check_two_classes(train.labels, classes, "train", cfg.data_dir)
    _check_two_classes(val.labels, classes, "val", cfg.data_dir)
    in_chans = cfg.channels or data.select(split=["train", "val"]).channels
    counts = torch.bincount(train.labels, minlength=len(classes)).tolist()
    positive = choose_minority(counts, classes, cfg.minority_class, cfg.data_dir)
    keep = subsample_minority(train.paths, train.labels, positive, cfg.minority_fraction, cfg.seed)
    keep_t = torch.from_numpy(keep)
    x_train = train.images(res=cfg.res, channels=in_chans, fit=cfg.fit)[keep_t]
    y_train = train.labels[keep_t]
    out = ClassifierTrainData(classes, positive, in_chans, x_train, y_train,
                    val.images(res=cfg.res, channels=in_chans, fit=cfg.fit), val.labels.clone(),
                    n_train_real=len(keep), train_paths=[str(train.paths[i]) for i in keep],
                    manifest_hash=data.manifest_hash, fit=data.resolve_fit(cfg.fit))
    if synthetic_mode is not None:
        held_out = {row["md5"]: split for split in ("val", "test") for row in data.select(split=split).rows
                    if row.get("md5")}
        _append_synthetic(out, cfg, synthetic_mode, held_out)
    return out


def _append_synthetic(out: ClassifierTrainData, cfg, mode: str, held_out_md5: dict[str, str]) -> None:
    if not cfg.synthetic_dir:
        raise UserError("strategies 'gan'/'gan_filtered' need a sample folder; pass --synthetic SAMPLES_DIR")
    if cfg.synthetic_ratio < 0:
        raise UserError(f"--synthetic-ratio must be >= 0, got {cfg.synthetic_ratio}")
    exclude = read_exclude_list(cfg.synthetic_exclude) if cfg.synthetic_exclude else None
    synth = load_synthetic(cfg.synthetic_dir, accepted_only=(mode == "accepted"), exclude=exclude)
    out.synthetic_excluded = synth.excluded
    unknown = sorted(set(synth.classes) - set(out.classes))
    if unknown:
        raise UserError(f"{cfg.synthetic_dir}/samples.csv has class(es) {', '.join(unknown)} that the data "
                        f"{cfg.data_dir} lacks (classes: {', '.join(out.classes)}); "
                        "sample from a matching generator")
    wanted = range(len(out.classes)) if cfg.synthetic_classes == "all" else [out.positive]
    files, labels = [], []
    for c in wanted:
        # Each class at the same share of its own train images: with every class synthesised,
        # being synthetic says nothing about the label.
        count = synthetic_count(cfg.synthetic_ratio, int((out.y_train == c).sum()))
        # The minority keeps the draw it always had for a seed; other classes draw from their own stream.
        chosen = choose_synthetic(synth, out.classes[c], count,
                                  cfg.seed if c == out.positive else cfg.seed + 7919 * (c + 1))
        files += chosen
        labels += [c] * len(chosen)
        if chosen:
            out.synthetic_per_class[out.classes[c]] = len(chosen)
    if not files:
        return
    refuse_held_out(files, held_out_md5, cfg.synthetic_dir)
    x_syn = read_images(files, cfg.res, out.in_chans)
    out.x_train = torch.cat([out.x_train, x_syn])
    out.y_train = torch.cat([out.y_train, torch.tensor(labels, dtype=torch.int64)])
    out.n_train_synthetic = len(files)
    out.synthetic_files = [str(f) for f in files]
