"""The report's 2-D feature maps: do the synthetic samples cover the real minority class?

Features come from the penultimate layer of one finished cell's classifier. A baseline cell
(trained on real images only) is preferred, so that the embedding was not shaped by the
synthetic images it is asked to judge. Each group is capped to keep the map cheap and legible.
One picture holds two maps of the same points: PCA (linear, distances mean something) and
t-SNE (neighbourhoods; a fixed seed, the perplexity in the caption). The groups: real train and
real test images of every class, and the accepted and the rejected samples of the minority.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from classify.ablate import plots
from classify.core import reportdoc as doc
from classify.core.fileio import atomic_write_bytes
from classify.data.dataset import open_prepared
from classify.evaluate.explain import ExplainConfig, run_explain
from classify.evaluate.outliers import OutlierConfig, run_outliers
from classify.model.loading import load_classifier
from classify.train.synthetic import load_synthetic, read_images

MAX_PER_GROUP = 300
TSNE_SEED = 0


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
    """uint8 image batches per group: real train/test of every class and the minority's samples."""
    tc = record["train_config"]
    minority = tc["minority_class"]
    data = open_prepared(tc["data_dir"])
    res = int(tc["res"])
    groups: dict[str, Any] = {}
    for name in sorted(data.classes, key=lambda c: c != minority):  # the minority first, in front
        for split in ("train", "test"):
            sel = data.select(split=split, classes=[name])
            if len(sel):
                groups[f"real {split} ({name})"] = _cap(sel.images(res=res))
    channels = next(iter(groups.values())).shape[1] if groups else 1
    synth = load_synthetic(samples_dir, accepted_only=False)
    for label, keep in (("synthetic accepted", ("1", "true", "True")),
                        ("synthetic rejected", ("0", "false", "False"))):
        files = [f for f, row in zip(synth.files, synth.rows)
                 if row["class"] == minority and row["accepted"].strip() in keep]
        if files:
            files = [files[i] for i in _cap(np.arange(len(files)))]
            groups[f"{label} ({minority})"] = read_images(files, res, channels)
    return {k: v for k, v in groups.items() if isinstance(v, torch.Tensor) and len(v)}


def feature_map_blocks(records: list[dict], out_dir: Path, name: str = "feature_map.png") -> list[doc.Block]:
    """PCA and t-SNE maps of penultimate features, or a one-line note saying why there are none."""
    samples = sorted({(r.get("sample_check") or {}).get("samples_dir") for r in records} - {None})
    if not samples:
        return []
    record = pick_feature_cell(records)
    if record is None:
        return [doc.Para("No feature map: no cell kept its checkpoint (rerun with --keep-checkpoints).")]
    clf = load_classifier(record["train"]["checkpoint"], device="cpu")
    groups = feature_groups(record, samples[0])
    feats = {name: clf.features(x).numpy() for name, x in groups.items()}
    png, perplexity = plots.feature_maps(feats,
                                         f"{record['id']} penultimate features; samples from {samples[0]}",
                                         seed=TSNE_SEED)
    atomic_write_bytes(out_dir / "plots" / name, png)
    tsne = (f"t-SNE (right; perplexity {perplexity:g}, seed {TSNE_SEED}: the same features give the same map)"
            if perplexity is not None else "no t-SNE (too few points)")
    caption = (f"PCA (left) and {tsne} of {record['id']} penultimate features: "
               f"real train/test images per class "
               f"and the accepted/rejected samples of {samples[0]} (at most {MAX_PER_GROUP} per group)")
    return [doc.Image(f"plots/{name}", caption)]


OUTLIERS_LISTED = 5  # per class in the report's table


def explanation_blocks(records: list[dict], out_dir: Path, suffix: str = "") -> list[doc.Block]:
    """Grad-CAM grids (test split and the sample set) and the suspected outliers of the train
    split, for the model the feature map uses (`classify explain` / `classify outliers`)."""
    record = pick_feature_cell(records)
    if record is None:
        return []
    samples = sorted({(r.get("sample_check") or {}).get("samples_dir") for r in records} - {None})
    model_path, data_dir = record["train"]["checkpoint"], record["train_config"]["data_dir"]
    folder = f"plots/explain{suffix}"
    s = run_explain(ExplainConfig(model_path=model_path, out_dir=str(out_dir / folder), data_dir=data_dir,
                                  split="test", images=samples[0] if samples else None, per_group=6),
                    log=lambda _line: None)
    blocks: list[doc.Block] = [doc.Heading(f"What {record['id']} looks at (Grad-CAM)", 3)]
    blocks += [doc.Image(f"{folder}/{src['png']}",
                         f"{src['title']}: Grad-CAM and Grad-CAM++ of {record['id']}, "
                         f"read at layer {s['layer']} ({s['map_size']} map), {s['layer_rule']}")
               for src in s["sources"].values()]
    folder = f"plots/outliers{suffix}"
    o = run_outliers(OutlierConfig(model_path=model_path, data_dir=data_dir, out_dir=str(out_dir / folder),
                                   per_class=6), log=lambda _line: None)
    rows = [[c, str(r["rank"]), Path(r["file"]).name, f"{float(r['iforest_score']):.3f}",
             f"{float(r['ocsvm_score']):.3f}", f"{float(r['p_class']):.3f}", r["predicted"]]
            for c, top in o["top"].items() for r in top[:OUTLIERS_LISTED]]
    blocks += [doc.Heading(f"Suspected outliers of the train split ({record['id']} features)", 3),
               doc.Para("IsolationForest and OneClassSVM fitted per class on the train images' penultimate "
                        "features; higher scores are odder, rank 1 is the oddest of its class; "
                        "p(class) is the model's probability of the labelled class. "
                        f"Every image: `{folder}/outliers.csv`."),
               doc.Table(["class", "rank", "file", "IsolationForest", "OneClassSVM", "p(class)", "predicted"],
                         rows),
               doc.Image(f"{folder}/outliers.png",
                         f"the {OUTLIERS_LISTED + 1} oddest train images of each class")]
    return blocks
