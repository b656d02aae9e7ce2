"""The report's 2-D feature map: do the synthetic samples cover the real minority class?

Features come from the penultimate layer of one finished cell's classifier. A baseline cell
(trained on real images only) is preferred, so that the embedding was not shaped by the
synthetic images it is asked to judge. Each group is capped to keep the map cheap and legible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from classify.ablate import plots
from classify.core import reportdoc as doc
from classify.core.fileio import atomic_write_bytes

MAX_PER_GROUP = 300


def pick_feature_cell(records: list[dict]) -> dict | None:
    """The cell whose model embeds the images: a kept checkpoint, baseline first, lowest seed."""
    usable = [r for r in records if Path(str((r.get("train") or {}).get("checkpoint", ""))).is_file()]
    usable.sort(key=lambda r: (r["cell"]["strategy"] != "baseline", -float(r["cell"]["minority_fraction"]),
                               int(r["cell"]["seed"])))
    return usable[0] if usable else None


def _cap(x, seed: int = 0):
    if len(x) <= MAX_PER_GROUP:
        return x
    idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:MAX_PER_GROUP])
    return x[idx]


def feature_groups(record: dict, samples_dir: str) -> dict[str, Any]:
    """uint8 image batches per group: real train/test of the minority class and the samples."""
    import torch

    from classify.data.dataset import open_prepared
    from classify.train.synthetic import load_synthetic, read_images

    tc = record["train_config"]
    minority = tc["minority_class"]
    data = open_prepared(tc["data_dir"])
    res = int(tc["res"])
    groups: dict[str, Any] = {}
    for split in ("train", "test"):
        sel = data.select(split=split, classes=[minority])
        if len(sel):
            groups[f"real {split} ({minority})"] = _cap(sel.images(res=res))
    channels = next(iter(groups.values())).shape[1] if groups else 1
    synth = load_synthetic(samples_dir, accepted_only=False)
    for label, keep in (("synthetic accepted", ("1", "true", "True")), ("synthetic rejected", ("0", "false", "False"))):
        files = [f for f, row in zip(synth.files, synth.rows)
                 if row["class"] == minority and row["accepted"].strip() in keep]
        if files:
            files = [files[i] for i in _cap(np.arange(len(files)))]
            groups[label] = read_images(files, res, channels)
    return {k: v for k, v in groups.items() if isinstance(v, torch.Tensor) and len(v)}


def feature_map_blocks(records: list[dict], out_dir: Path, name: str = "feature_map.png") -> list[doc.Block]:
    """A PCA map of penultimate features, or a one-line note saying why there is none."""
    samples = sorted({(r.get("sample_check") or {}).get("samples_dir") for r in records} - {None})
    if not samples:
        return []
    record = pick_feature_cell(records)
    if record is None:
        return [doc.Para("No feature map: no cell kept its checkpoint (rerun with --keep-checkpoints).")]
    from classify.model.checkpoint import load_classifier

    clf = load_classifier(record["train"]["checkpoint"], device="cpu")
    groups = feature_groups(record, samples[0])
    feats = {name: clf.features(x).numpy() for name, x in groups.items()}
    title = f"PCA of {record['id']} penultimate features; samples from {samples[0]}"
    atomic_write_bytes(out_dir / "plots" / name, plots.feature_map(feats, title))
    return [doc.Image(f"plots/{name}", title)]
