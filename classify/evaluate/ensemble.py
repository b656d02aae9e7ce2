"""`classify ensemble RUN... --out DIR`: combine trained classifiers into one model.pt.

The members' checkpoints are copied into the file whole. Their validation predictions (on the
val split of the prepared folder they were trained on, or `--data`) give each member's score
distribution (for `rank`) and the threshold of the combination, chosen on validation exactly as
`classify train` chooses one (best F1, or `--target-recall`). Test data is never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from classify.core.configs import Config, setting
from classify.core.errors import UserError
from classify.core.fileio import atomic_torch_save
from classify.data.dataset import open_prepared
from classify.model.ensemble import COMBINES, FORMAT_VERSION, KIND, EnsembleClassifier, check_members
from classify.model.loading import read_checkpoint


@dataclass
class EnsembleConfig(Config):
    """Every setting of `classify ensemble`; its options are built from these fields."""

    config_name = "ensemble config keys"
    renamed = {"runs": "model_paths", "out": "out_dir"}

    model_paths: list[str]  # the members: model.pt files or their run folders (the command's RUNS)
    out_dir: str = setting(help="Folder for the ensemble's model.pt.", flag="--out", path="dir")
    combine: str = setting("mean", "mean of the probabilities, or mean of each member's validation "
                           "percentiles (rank).", choices=COMBINES)
    # Default: the first member's training data.
    data_dir: str | None = setting(None, "Prepared folder whose val split picks the threshold (default: the "
                                   "first member's data).", flag="--data", path="dir")
    target_recall: float | None = setting(None, "Choose the threshold reaching this val recall.")
    device: str = setting("cpu", "cpu, cuda, cuda:N or auto.", cli_default="auto")


def build_ensemble(cfg: EnsembleConfig) -> dict:
    """Write OUT/model.pt; returns the validation metrics of the combination."""
    from classify.train.metrics import (  # noqa: PLC0415 — scikit-learn, not loaded by `classify --help`
        choose_threshold,
        classification_metrics,
    )

    if len(cfg.model_paths) < 2:
        raise UserError(f"an ensemble needs at least 2 models, got {len(cfg.model_paths)}")
    if cfg.combine not in COMBINES:
        raise UserError(f"--combine {cfg.combine!r} is not one of {', '.join(COMBINES)}")
    members = [read_checkpoint(r) for r in cfg.model_paths]
    check_members(members, cfg.model_paths)
    data_dir = cfg.data_dir or members[0].get("config", {}).get("data_dir")
    if not data_dir:
        raise UserError("the members do not record their data folder; pass --data DATA_DIR")
    data = open_prepared(data_dir)
    val = data.select(split="val")
    ckpt = {"format_version": FORMAT_VERSION, "kind": KIND, "combine": cfg.combine, "members": members,
            "val_scores": [], "threshold": None, "data_manifest_hash": data.manifest_hash}
    ens = EnsembleClassifier(ckpt, device=cfg.device)
    x = val.images(res=ens.res, channels=ens.in_chans, fit=ens.fit)
    member_probs = ens.member_probs(x)
    ckpt["val_scores"] = [p.numpy().tolist() for p in member_probs]
    ens.val_scores = [p.double() for p in member_probs]
    probs = ens.combined(member_probs)
    y = val.labels
    positive = ens.positive_index
    if len(ens.classes) == 2:
        ckpt["threshold"] = choose_threshold(y == positive, probs[:, positive].numpy(), cfg.target_recall)
    metrics = classification_metrics(y.numpy(), probs.numpy(), ckpt["threshold"], positive, ens.classes,
                                     context=f"the val split of {data_dir}")
    metrics.pop("pr"), metrics.pop("roc")
    ckpt["val"] = metrics
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(ckpt, out / "model.pt")
    return {"model": str(out / "model.pt"), "threshold": ckpt["threshold"], "val": metrics,
            "members": [str(r) for r in cfg.model_paths], "combine": cfg.combine}
