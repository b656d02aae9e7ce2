"""`classify explain`: where a trained classifier looks, as Grad-CAM / Grad-CAM++ heatmaps.

Sources, each drawn as one grid (OUT/explain_<key>.png) of groups, every group a row of
images with one row of heatmaps per method under it:
- `--data DATA --split S` (key S): the top true positives (highest score first), false
  negatives (the most confidently missed first) and false positives (highest score first) of
  the positive (minority) class at the model's threshold;
- `--images FOLDER` that holds a `gen sample` samples.csv (key `samples`): accepted and
  rejected samples, each group spread evenly over its judge scores, highest first;
- `--images FOLDER` of plain images (key `images`): the highest and the lowest scores.
The heat is for the positive class on real and plain images, for the sample's own class on
samples. Every shown image is listed in OUT/explain.csv; OUT/explain.json says which layer
was read and why (classify.evaluate.cam). An ensemble is explained through its first member.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from classify.core.configs import Config, setting
from classify.core.errors import UserError
from classify.core.fileio import atomic_write_bytes, atomic_write_csv, atomic_write_json
from classify.data.dataset import open_prepared
from classify.data.images import ImageRejected, decode_image
from classify.data.splits import EVAL_SPLITS
from classify.evaluate.cam import METHODS, LayerChoice, cam_maps, explained_net, pick_layer
from classify.evaluate.gallery import TileRow, decode_for_display, display_res, tile_figure, to_rgb
from classify.evaluate.predict import list_images
from classify.model.inference import normalise, to_unit_float
from classify.model.loading import check_classes, load_classifier
from classify.train.synthetic import load_synthetic, read_images

METHOD_LABELS = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}
CSV_COLUMNS = ["source", "group", "rank", "file", "class", "target_class", "score", "predicted", "note",
               "peak_y", "peak_x"]


@dataclass
class ExplainConfig(Config):
    """Every setting of `classify explain`; its options are built from these fields."""

    config_name = "explain config keys"
    renamed = {"model": "model_path", "out": "out_dir", "data": "data_dir"}

    model_path: str  # a model.pt or its run folder (the command's MODEL argument)
    out_dir: str = setting(help="Folder for the grids, explain.csv/json.", flag="--out", path="dir")
    data_dir: str | None = setting(None, "Prepared folder: explain the true positives, false negatives and "
                                   "false positives of --split.", flag="--data", path="dir")
    split: str = setting("test", choices=EVAL_SPLITS)
    images: str | None = setting(None, "A `gen sample` folder (accepted vs rejected samples) or any folder "
                                 "of images.", path="dir")
    layer: str | None = setting(None, "Backbone layer the heatmaps read (e.g. layer3); default: the last "
                                "stage whose map is >= 4x4.")
    methods: list[str] = setting(help=f"Comma list from {', '.join(METHODS)} (checked by "
                                 "classify.evaluate.cam).", default_factory=lambda: list(METHODS))
    per_group: int = setting(8, "Images shown per group.")
    device: str = setting("cpu", "cpu, cuda, cuda:N or auto.", cli_default="auto")


@dataclass
class Source:
    key: str  # explain_<key>.png
    title: str
    paths: list[Path]
    x: torch.Tensor  # uint8 [N, C, res, res] at the model's resolution and channels
    classes: list[str]  # true (or sample) class per image, "" when unknown
    targets: list[int]  # class index whose heat is shown, per image
    display: Callable[[list[int]], torch.Tensor]  # uint8 display copies of the given rows
    notes: list[str] = field(default_factory=list)  # e.g. the filter that rejected a sample
    groups: list[Group] = field(default_factory=list)


@dataclass
class Group:
    name: str
    how: str  # how the shown images were picked
    members: list[int]  # every row of the source in this group
    shown: list[int] = field(default_factory=list)


def first_member(clf) -> tuple[object, str | None]:
    """The single model to explain, and a note when it stands for an ensemble."""
    members = getattr(clf, "members", None)
    if not members:
        return clf, None
    first = members[0]
    return first, (f"an ensemble of {len(members)} models: the heatmaps and scores shown are its first "
                   f"member's ({first.model_name})")


def _data_source(cfg: ExplainConfig, clf) -> Source:
    data = open_prepared(cfg.data_dir)
    check_classes(clf, data.classes, cfg.model_path, cfg.data_dir,
                  "explain it on the data it was trained for")
    if cfg.split not in EVAL_SPLITS:
        raise UserError(f"unknown --split {cfg.split!r}; use train, val or test")
    part = data.select(split=cfg.split)
    if len(part) == 0:
        raise UserError(f"the {cfg.split} split of {cfg.data_dir} is empty; pick another --split")
    paths = part.paths
    size = display_res(clf.res)
    return Source(cfg.split, f"{cfg.split} split of {cfg.data_dir}", paths,
                  part.images(res=clf.res, channels=clf.in_chans, fit=clf.fit),
                  [clf.classes[int(i)] for i in part.labels], [clf.positive_index] * len(paths),
                  lambda rows: decode_for_display([paths[i] for i in rows], size, clf.in_chans, clf.fit))


def _folder_source(cfg: ExplainConfig, clf) -> Source:
    folder = Path(cfg.images)
    if not folder.is_dir():
        raise UserError(f"--images {folder} is not a folder; "
                        "give a `gen sample` folder or a folder of images")
    size = display_res(clf.res)
    if (folder / "samples.csv").is_file():
        synth = load_synthetic(folder, accepted_only=False)
        if len(synth) == 0:
            raise UserError(f"{folder}/samples.csv lists no samples; "
                            "nothing to explain — run `gen sample` first")
        files = synth.files
        targets = [clf.classes.index(c) if c in clf.classes else clf.positive_index for c in synth.classes]
        notes = [r.get("rejected_by", "") or ("" if _accepted(r) else "rejected") for r in synth.rows]
        source = Source("samples", f"samples of {folder}", files, read_images(files, clf.res, clf.in_chans),
                        list(synth.classes), targets,
                        lambda rows: read_images([files[i] for i in rows], size, clf.in_chans), notes)
        source.groups = [Group("accepted", "spread over the judge scores, highest first",
                               [i for i, r in enumerate(synth.rows) if _accepted(r)]),
                         Group("rejected", "spread over the judge scores, highest first",
                               [i for i, r in enumerate(synth.rows) if not _accepted(r)])]
        return source
    paths = _readable_images(folder)
    x = decode_for_display(paths, clf.res, clf.in_chans, clf.fit)
    return Source("images", f"images in {folder}", paths, x, [""] * len(paths),
                  [clf.positive_index] * len(paths),
                  lambda rows: decode_for_display([paths[i] for i in rows], size, clf.in_chans, clf.fit))


def _readable_images(folder: Path) -> list[Path]:
    """The image files of a plain folder (recursively) that decode; the others are left out."""
    paths = []
    for path in list_images([str(folder)]):
        try:
            decode_image(path)
        except (ImageRejected, OSError):
            continue
        paths.append(path)
    if not paths:
        raise UserError(f"no image file in {folder} could be decoded; nothing to explain")
    return paths


def _accepted(row: dict[str, str]) -> bool:
    return row.get("accepted", "").strip() in ("1", "true", "True")


def predicted_positive(clf, probs: torch.Tensor) -> np.ndarray:
    """The model's decision for its positive class: threshold for two classes, else argmax."""
    pos = clf.positive_index
    if len(clf.classes) == 2 and clf.threshold is not None:
        return (probs[:, pos] >= clf.threshold).numpy()
    return (probs.argmax(dim=1) == pos).numpy()


def _spread(rows: list[int], score: np.ndarray, k: int) -> list[int]:
    """k rows evenly spaced over the group's scores, highest first."""
    ordered = sorted(rows, key=lambda i: -score[i])
    if len(ordered) <= k:
        return ordered
    return [ordered[int(j)] for j in np.unique(np.round(np.linspace(0, len(ordered) - 1, k)).astype(int))]


def pick_groups(source: Source, clf, probs: torch.Tensor, k: int) -> None:
    """Fill `source.groups` and the rows each shows (at most k)."""
    score = probs[torch.arange(len(probs)), source.targets].numpy()
    if source.key == "samples":
        for g in source.groups:
            g.shown = _spread(g.members, score, k)
        return
    p = probs[:, clf.positive_index].numpy()
    order = [int(i) for i in np.argsort(-p, kind="stable")]
    if source.key == "images":
        source.groups = [Group("highest scores", "highest first", order),
                         Group("lowest scores", "lowest first", order[::-1])]
    else:
        pos = np.array([c == clf.positive_class for c in source.classes])
        pred = predicted_positive(clf, probs)
        source.groups = [
            Group("true positives", "highest score first", [i for i in order if pos[i] and pred[i]]),
            Group("false negatives", "lowest score first (the most confidently missed)",
                  [i for i in order[::-1] if pos[i] and not pred[i]]),
            Group("false positives", "highest score first", [i for i in order if not pos[i] and pred[i]]),
        ]
    for g in source.groups:
        g.shown = g.members[:k]


def _overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3]: the heatmap (resized to the image) over the image, grad-cam's colouring."""
    import cv2  # noqa: PLC0415 — opencv (grad-cam's): heavy, only for heatmaps
    from pytorch_grad_cam.utils.image import show_cam_on_image  # noqa: PLC0415 — grad-cam: heavy, only `classify explain` needs it

    h, w = image.shape[:2]
    heat = cv2.resize(np.ascontiguousarray(heat, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return show_cam_on_image(image.astype(np.float32) / 255.0, np.clip(heat, 0.0, 1.0), use_rgb=True,
                             image_weight=0.55)


def source_heat(source: Source, clf, net, choice: LayerChoice,
                methods: list[str]) -> dict[str, dict[int, np.ndarray]]:
    """method -> {row: heatmap [res, res]} for every shown row."""
    rows = sorted({i for g in source.groups for i in g.shown})
    if not rows:
        return {m: {} for m in methods}
    device = next(net.parameters()).device
    x = normalise(to_unit_float(source.x[rows], device), clf.norm)
    targets = [source.targets[i] for i in rows]
    return {m: dict(zip(rows, cam_maps(net, choice.module, x, targets, m))) for m in methods}


def source_figure(source: Source, heat: dict[str, dict[int, np.ndarray]], score: np.ndarray, k: int,
                  title: str) -> bytes:
    rows = sorted({i for g in source.groups for i in g.shown})
    shown = dict(zip(rows, to_rgb(source.display(rows)))) if rows else {}
    tiles: list[TileRow] = []
    for g in source.groups:
        captions = [f"p={score[i]:.2f}" + (f" {source.notes[i]}" if source.notes and source.notes[i] else "")
                    for i in g.shown]
        label = f"{g.name}\n{len(g.shown)} of {len(g.members)}\n" + textwrap.fill(g.how, 24)
        tiles.append(TileRow(label, [shown[i] for i in g.shown], captions))
        for m, maps in heat.items():
            tiles.append(TileRow(METHOD_LABELS[m], [_overlay(shown[i], maps[i]) for i in g.shown]))
    return tile_figure(tiles, k, title)


def csv_rows(source: Source, clf, probs: torch.Tensor, heat: dict[str, dict[int, np.ndarray]]) -> list[list]:
    pred = predicted_positive(clf, probs)
    first = next(iter(heat.values()), {})
    out = []
    for g in source.groups:
        for rank, i in enumerate(g.shown, 1):
            peak = np.unravel_index(int(np.argmax(first[i])), first[i].shape) if i in first else None
            target = source.targets[i]
            out.append([source.key, g.name, rank, str(source.paths[i]), source.classes[i],
                        clf.classes[target], f"{float(probs[i, target]):.6f}",
                        clf.positive_class if pred[i] else "not " + clf.positive_class,
                        source.notes[i] if source.notes else "",
                        "" if peak is None else f"{(peak[0] + 0.5) / first[i].shape[0]:.3f}",
                        "" if peak is None else f"{(peak[1] + 0.5) / first[i].shape[1]:.3f}"])
    return out


def _check(cfg: ExplainConfig) -> None:
    if not cfg.data_dir and not cfg.images:
        raise UserError("nothing to explain: give --data DATA (with --split) and/or --images FOLDER "
                        "(a `gen sample` folder or any folder of images)")
    if cfg.per_group < 1:
        raise UserError(f"--per-group must be at least 1, got {cfg.per_group}")
    bad = [m for m in cfg.methods if m not in METHODS]
    if bad or not cfg.methods:
        raise UserError(f"unknown --methods {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}")


def run_explain(cfg: ExplainConfig, log: Callable[[str], None] = print) -> dict:
    """Write OUT/explain_<source>.png per source, explain.csv and explain.json; returns the summary."""
    _check(cfg)
    clf, note = first_member(load_classifier(cfg.model_path, device=cfg.device))
    if note:
        log(f"note: {cfg.model_path} is {note}")
    sources = (([_data_source(cfg, clf)] if cfg.data_dir else [])
               + ([_folder_source(cfg, clf)] if cfg.images else []))
    net = explained_net(clf)
    choice = pick_layer(clf.model.backbone, clf.res, clf.in_chans, clf.model_name, cfg.layer)
    log(f"heatmaps read layer {choice.name} ({choice.map_size} at {clf.res}px): {choice.rule}")
    out = Path(cfg.out_dir)
    summary = {"model": str(cfg.model_path), "model_name": clf.model_name, "ensemble_note": note,
               "res": clf.res, "display_res": display_res(clf.res), "layer": choice.name,
               "layer_rule": choice.rule, "map_size": choice.map_size, "methods": list(cfg.methods),
               "positive_class": clf.positive_class, "threshold": clf.threshold, "sources": {}}
    table: list[list] = []
    for source in sources:
        probs = clf.predict_proba(source.x)
        pick_groups(source, clf, probs, cfg.per_group)
        heat = source_heat(source, clf, net, choice, list(cfg.methods))
        score = probs[torch.arange(len(probs)), source.targets].numpy()
        what = "its own class" if source.key == "samples" else f"class {clf.positive_class!r}"
        title = (f"{source.title}: heat for {what}, {' and '.join(METHOD_LABELS[m] for m in cfg.methods)}\n"
                 f"{clf.model_name} at {clf.res}px, layer {choice.name} ({choice.map_size} map)"
                 + ("; first member of an ensemble" if note else ""))
        name = f"explain_{source.key}.png"
        atomic_write_bytes(out / name, source_figure(source, heat, score, cfg.per_group, title))
        table += csv_rows(source, clf, probs, heat)
        summary["sources"][source.key] = {"title": source.title, "n": len(source.paths), "png": name,
                                          "groups": {g.name: {"n": len(g.members), "shown": len(g.shown),
                                                              "picked": g.how}
                                                     for g in source.groups}}
        counts = ", ".join(f"{g.name} {len(g.shown)}/{len(g.members)}" for g in source.groups)
        log(f"{source.title}: {counts}; wrote {out / name}")
    atomic_write_csv(out / "explain.csv", CSV_COLUMNS, table)
    atomic_write_json(out / "explain.json", summary)
    return summary
