"""The epoch loop behind `train_classifier`: device batches, strategy hooks, validation,
best-checkpoint tracking and early stopping."""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_text
from classify.model.checkpoint import save_checkpoint
from classify.model.inference import normalisation, normalise, predict_probs, to_unit_float
from classify.model.models import build_model
from classify.train.augment import apply_classic, classic_augment, cutmix, mixup
from classify.train.batches import batch_slices, epoch_indices
from classify.train.config import real_only_epochs
from classify.train.data import ClassifierTrainData
from classify.train.losses import inverse_frequency_weights, smooth_one_hot, soft_cross_entropy
from classify.train.metrics import choose_threshold, classification_metrics
from classify.train.strategies import Strategy


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from ~0 to 1, then cosine decay to 0 at the last step."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))


def make_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW/SGD; the backbone at lr x backbone_lr_mult (fine-tuning keeps pretrained features),
    the head at lr. No weight decay on norms and biases: decaying BN scales only fights the
    normalisation."""
    groups = []
    for part, lr in ((model.backbone, cfg.lr * cfg.backbone_lr_mult), (model.head, cfg.lr)):
        params = list(part.parameters())
        groups += [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay, "lr": lr},
                   {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": lr}]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def make_schedule(cfg, opt: torch.optim.Optimizer, steps_per_epoch: int,
                  total_steps: int | None = None) -> tuple[torch.optim.lr_scheduler.LambdaLR, Any]:
    """(per-step LambdaLR, per-epoch ReduceLROnPlateau or None). With `plateau` the LambdaLR
    only warms up (it is stepped during warm-up alone, so it never undoes a plateau cut).
    `total_steps` (default epochs x steps_per_epoch) is where the cosine reaches 0."""
    total = total_steps or steps_per_epoch * cfg.epochs
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.lr_schedule == "plateau":
        warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
        return warmup, plateau
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warm, total)), None


def selection_score(val: dict, binary: bool) -> float:
    return val["average_precision"] if binary else val["macro_f1"]


def append_jsonl(path: Path, rows: list[dict], row: dict) -> None:
    """Rewrite the whole (small) log atomically so a kill never leaves half a line."""
    rows.append(row)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


@dataclass
class _Step:
    """Everything one optimisation step needs, built once per run."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    plateau: Any  # ReduceLROnPlateau with --lr-schedule plateau, else None
    warm_steps: int
    norm: dict
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    class_weights: torch.Tensor | None
    aug: torch.nn.Module | None
    gen: torch.Generator
    num_classes: int
    history: list[dict] = field(default_factory=list)
    steps: int = 0


def build_step(cfg, strategy: Strategy, data: ClassifierTrainData,
               device: torch.device) -> tuple[_Step, torch.nn.Module]:
    """Model, optimizer, schedule and strategy hooks; returns (step state, the uncompiled net)."""
    k = len(data.classes)
    net = build_model(cfg.model_name, num_classes=k, in_chans=data.in_chans, pretrained=cfg.pretrained)
    net = net.to(device)
    cuda = device.type == "cuda"
    bf16 = (cuda and cfg.amp) or (device.type == "cpu" and cfg.cpu_bf16)
    # channels_last: on CUDA always; on the CPU with bf16 only, where oneDNN's bf16 kernels
    # prefer it (x1.12-1.19 measured; in fp32 it was x0.93-1.18: docs/BENCHMARKS.md).
    channels_last = cfg.channels_last and (cuda or bf16)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if cuda and cfg.compile else net
    opt = make_optimizer(cfg, net)
    steps_per_epoch = max(1, math.ceil(data.y_train.numel() / cfg.batch))
    # A warm-up schedule's real-only epochs are shorter: the cosine ends on the last step taken.
    total = sum(max(1, math.ceil(train_rows(cfg, data, e).numel() / cfg.batch))
                for e in range(1, cfg.epochs + 1))
    sched, plateau = make_schedule(cfg, opt, steps_per_epoch, total)
    weights = inverse_frequency_weights(data.y_train, k).to(device) if strategy.class_weights else None
    aug = classic_augment(cfg.classic, cfg.aug_p).to(device) if strategy.classic else None
    gen = torch.Generator().manual_seed(cfg.seed)
    step = _Step(model, opt, sched, plateau, int(round(cfg.warmup_epochs * steps_per_epoch)),
                 normalisation(data.in_chans, cfg.pretrained is not None), device,
                 torch.bfloat16 if bf16 else None, channels_last, weights, aug, gen, k)
    return step, net


def make_batch(cfg, strategy: Strategy, st: _Step, x: torch.Tensor,
               y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images + int labels -> augmented, normalised float batch + soft targets, on device."""
    xb = to_unit_float(x, st.device)
    if st.aug is not None:
        xb = apply_classic(st.aug, xb)
    yb = smooth_one_hot(y.to(st.device), st.num_classes, cfg.label_smoothing)
    if strategy.mixes:
        which = strategy.mixes[int(torch.randint(len(strategy.mixes), (1,), generator=st.gen))]
        if which == "mixup":
            xb, yb = mixup(xb, yb, cfg.mixup_alpha, st.gen)
        else:
            xb, yb = cutmix(xb, yb, cfg.cutmix_alpha, st.gen)
    xb = normalise(xb, st.norm)
    if st.channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb, yb


def train_epoch(cfg, strategy: Strategy, st: _Step, data: ClassifierTrainData, epoch: int) -> float:
    st.model.train()
    head_only = epoch <= cfg.warmup_head_epochs
    net = getattr(st.model, "_orig_mod", st.model)  # the module behind torch.compile
    net.backbone.requires_grad_(not head_only)
    if head_only:  # linear probing: the backbone, BatchNorm statistics included, stays as it is
        net.backbone.eval()
    rows = train_rows(cfg, data, epoch)
    order = rows[epoch_indices(data.y_train[rows], strategy.balanced_sampler, st.gen)]
    n_batches = sum(1 for _ in batch_slices(order, cfg.batch))
    bar = tqdm(batch_slices(order, cfg.batch), total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}",
               disable=not cfg.progress, leave=False)
    total, count = 0.0, 0
    for idx in bar:
        loss = train_step(cfg, strategy, st, data.x_train[idx], data.y_train[idx],
                          sample_weights(cfg, data, idx))
        if not math.isfinite(loss):
            raise UserError(f"loss became {loss} at epoch {epoch}; training stopped, {cfg.out_dir}/model.pt "
                            "keeps the last good epoch (if any) — lower --lr")
        total += loss * idx.numel()
        count += idx.numel()
        bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1)


def train_rows(cfg, data: ClassifierTrainData, epoch: int) -> torch.Tensor:
    """The train rows an epoch draws from: all of them, or the real ones alone in the final
    epochs of the warm-up schedule (`real_only_epochs`)."""
    n = data.y_train.numel()
    if data.n_train_synthetic and epoch > cfg.epochs - real_only_epochs(cfg.epochs, cfg.synthetic_schedule):
        n = data.n_train_real
    return torch.arange(n)


def sample_weights(cfg, data: ClassifierTrainData, idx: torch.Tensor) -> torch.Tensor | None:
    """Per-image loss weights of a batch: 1 for real rows, --synthetic-weight for synthetic ones
    (None when every weight is 1). A mixup/cutmix image keeps the weight of the image it was
    mixed into."""
    if cfg.synthetic_weight == 1.0 or not data.n_train_synthetic:
        return None
    return torch.where(idx >= data.n_train_real, cfg.synthetic_weight, 1.0)


def train_step(cfg, strategy: Strategy, st: _Step, x_uint8: torch.Tensor, y: torch.Tensor,
               weights: torch.Tensor | None = None) -> float:
    """One optimisation step on a uint8 batch; returns the loss (NaN/inf is left to the caller)."""
    xb, yb = make_batch(cfg, strategy, st, x_uint8, y)
    with torch.autocast(st.device.type, dtype=st.amp_dtype, enabled=st.amp_dtype is not None):
        logits = st.model(xb)
    loss = soft_cross_entropy(logits, yb, st.class_weights, strategy.focal_gamma,
                              None if weights is None else weights.to(st.device))
    if not torch.isfinite(loss):
        return float(loss.item())  # skip the update: keep the weights of the last good step
    st.opt.zero_grad(set_to_none=True)
    loss.backward()
    st.opt.step()
    if st.plateau is None or st.steps < st.warm_steps:
        st.sched.step()
    st.steps += 1
    return float(loss.item())


@torch.no_grad()
def recalibrate_bn(cfg, st: _Step, data: ClassifierTrainData, rows: torch.Tensor | None = None) -> None:
    """Re-estimate BatchNorm running statistics on up to cfg.bn_recalibrate clean train images.

    With momentum 0.1 the running stats lag the weights by ~10 steps; small defect sets give
    only a handful of steps per epoch, so eval-mode predictions would use stale statistics
    (a model that fits train perfectly can predict one class at eval). A cumulative average
    over un-augmented images matches what validation and inference see ("precise BN").
    """
    bns = [m for m in st.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or cfg.bn_recalibrate <= 0:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches below
    pool = torch.arange(data.y_train.numel()) if rows is None else rows  # the rows this epoch trained on
    n = min(cfg.bn_recalibrate, pool.numel())
    idx = pool[torch.randperm(pool.numel(), generator=st.gen)[:n]]
    st.model.train()
    for b in batch_slices(idx, cfg.batch):
        xb = normalise(to_unit_float(data.x_train[b], st.device), st.norm)
        if st.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(st.device.type, dtype=st.amp_dtype, enabled=st.amp_dtype is not None):
            st.model(xb)
    for m, mom in zip(bns, saved):
        m.momentum = mom


def validate(cfg, st: _Step, data: ClassifierTrainData) -> tuple[dict, float | None, torch.Tensor]:
    """Validation metrics at the threshold chosen on these same validation scores."""
    probs = predict_probs(st.model, data.x_val, st.norm, st.device, amp_dtype=st.amp_dtype)
    binary = len(data.classes) == 2
    threshold = None
    if binary:
        threshold = choose_threshold(data.y_val == data.positive, probs[:, data.positive].numpy(),
                                     cfg.target_recall)
    m = classification_metrics(data.y_val.numpy(), probs.numpy(), threshold, data.positive, data.classes,
                               context=f"the val split of {cfg.data_dir}")
    m.pop("pr"), m.pop("roc")
    picked = probs[torch.arange(len(data.y_val)), data.y_val].clamp_min(1e-12)
    m["log_loss"] = float(-picked.log().mean())
    return m, threshold, probs


def epoch_resolutions(cfg) -> list[int]:
    """The resolution of each epoch: --res, or the progressive schedule in equal shares
    (earlier stages get the shorter shares when the epochs do not divide)."""
    stages = cfg.res_schedule or [cfg.res]
    shares = [len(part) for part in _split(cfg.epochs, len(stages))]
    return [r for r, n in zip(stages, shares) for _ in range(n)]


def _split(n: int, parts: int) -> list[range]:
    base, extra = divmod(n, parts)
    sizes = [base + (1 if i >= parts - extra else 0) for i in range(parts)]
    starts = [sum(sizes[:i]) for i in range(parts)]
    return [range(s, s + k) for s, k in zip(starts, sizes)]


def fit(cfg, strategy: Strategy, data: ClassifierTrainData, device: torch.device, out_dir: Path,
        data_at=None, replacement=None) -> dict:
    """Run the epochs; write model.pt whenever validation improves at the final resolution.
    Returns the best epoch. `data_at(res)` gives the data at another resolution (progressive
    resizing); earlier stages train and validate but never become the kept model. `replacement`
    (classify.train.replace.RunReplacement) moves a previous run aside right before this run's
    first checkpoint, deletes it once that checkpoint is on disk, and moves it back if it fails."""
    started = False

    def start() -> None:
        nonlocal started
        if not started and replacement is not None:
            replacement.begin()
        started = True

    st, net = build_step(cfg, strategy, data, device)
    best = {"score": -math.inf, "epoch": 0, "threshold": None, "val": {}}
    log: list[dict] = []
    binary = len(data.classes) == 2
    resolutions, current, epoch = epoch_resolutions(cfg), {cfg.res: data}, 0
    for epoch, res in enumerate(resolutions, 1):
        if res not in current:
            current = {res: data_at(res)}
        stage_data = current[res]
        t0 = time.perf_counter()
        loss = train_epoch(cfg, strategy, st, stage_data, epoch)
        recalibrate_bn(cfg, st, stage_data, train_rows(cfg, stage_data, epoch))
        val, threshold, _ = validate(cfg, st, stage_data)
        score = selection_score(val, binary)
        if st.plateau is not None and st.steps >= st.warm_steps:
            st.plateau.step(score)
        # A tiny val set often ties (AP 1.0 early by luck); the lower val loss breaks the tie.
        improved = res == cfg.res and (score > best["score"] or (
            score == best["score"] and val["log_loss"] < best["val"]["log_loss"]))
        if improved:
            best = {"score": score, "epoch": epoch, "threshold": threshold, "val": val}
            _first_checkpoint(start, replacement, started,
                              functools.partial(_save, cfg, out_dir, net, st, data, epoch, threshold, val))
        row = {
            "epoch": epoch, "res": res, "train_loss": loss, "lr": st.opt.param_groups[-1]["lr"],
            "val_ap": val["average_precision"], "val_roc_auc": val["roc_auc"],
            "val_macro_f1": val["macro_f1"], "val_minority_f1": val["minority_f1"],
            "val_loss": val["log_loss"], "threshold": threshold,
            "improved": improved, "epoch_time_s": round(time.perf_counter() - t0, 3)}
        if started:
            append_jsonl(out_dir / "metrics.jsonl", log, row)
        else:  # an early progressive-resizing epoch: kept until the run writes its first file
            log.append(row)
        if (cfg.patience and res == cfg.res
                and epoch - max(best["epoch"], resolutions.index(cfg.res)) >= cfg.patience):
            break
    if not started:  # never improved: the run still replaces the old one (its config, metrics.jsonl)
        _first_checkpoint(start, replacement, False, lambda: atomic_write_text(
            out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in log)))
    best["epochs_run"] = epoch
    return best


def _first_checkpoint(start, replacement, started: bool, save) -> None:
    """Save a checkpoint; the run's first one switches the folder over from a previous run, and a
    failure in between (a full disk, Ctrl-C) switches it back."""
    if started or replacement is None:
        start()
        save()
        return
    try:
        start()
        save()
    except BaseException:
        replacement.rollback()
        raise
    replacement.settle()


def _save(cfg, out_dir: Path, net: torch.nn.Module, st: _Step, data: ClassifierTrainData, epoch: int,
          threshold: float | None, val: dict, head: dict | None = None) -> None:
    save_checkpoint(out_dir / "model.pt", model=net, model_name=cfg.model_name, config=cfg.to_dict(),
                    classes=data.classes, positive=data.positive, in_chans=data.in_chans, res=cfg.res,
                    fit=data.fit, threshold=threshold, norm=st.norm, epoch=epoch, val=val,
                    data_manifest_hash=data.manifest_hash, head=head)
