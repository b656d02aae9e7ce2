"""`gen sample`: generate seeded samples, score them with every filter, keep the good ones.

Nothing is thrown away: every sample's PNG stays on disk with all its scores in samples.csv;
`accepted`/`rejected_by` record the decision, so a user can change a threshold later and
re-run (generation is skipped for seeds already on disk). The reals for realism/memorisation
are the generator's own TRAIN images (info data_dir + classes), never val/test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_json
from classify.core.runlock import folder_lock
from classify.data.dataset import open_prepared
from classify.data.manifest import refuse_output_in_prepared
from classify.evaluate.outliers import MIN_IMAGES
from classify.model.loading import load_classifier
from classify.train.synthetic import read_exclude_list
from gen.core.generator_file import load_generator
from gen.sample.browse import write_browser
from gen.sample.config import SampleConfig
from gen.sample.domain_gap import domain_gap, gap_lines
from gen.sample.files import (
    PlanRow,
    check_disk,
    fmt_cell,
    load_reals,
    parse_resize,
    plan,
    read_png,
    save_png,
    write_csv,
)
from gen.sample.filter_report import build_filter_report, summary_lines
from gen.sample.filters import FilterInputs, RealSet, explain_empty, run_filters
from gen.sample.pages import write_grids, write_sample_index
from gen.sample.sampling import batches, check_trunc, count_seeds, generate, parse_seeds, turn_back

FEATURE_FILTERS = ("realism", "outlier", "memorisation", "duplicates", "fid_select")
REAL_FILTERS = ("stats", "twosample")  # compare with the train reals' pixels; features optional
SCORE_COLUMNS = ("judge_confidence", "realism_score", "outlier_iforest", "outlier_ocsvm", "twosample_score",
                 "brightness", "contrast", "centroid_distance", "nearest_real_distance",
                 "nearest_real_pixel_distance", "fid_select_kept", "combined_rank")


def _check_resume(out: Path, cfg: SampleConfig, snapshot: str) -> None:
    """Seeds on disk are reused only if they were made by the same generator and settings."""
    path = out / "sample_info.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    for key, now in (("snapshot", snapshot), ("trunc", cfg.trunc), ("resize_to", cfg.resize_to)):
        if old.get(key) != now:
            raise UserError(f"{out} holds samples made with {key}={old.get(key)!r}, not {now!r}; "
                            "use another --out (or delete that folder) so that the sets do not mix")


def _produce(G, rows: list[PlanRow], cfg: SampleConfig, out: Path, log: Callable,
             orient: dict | None = None) -> tuple[torch.Tensor, int]:
    """All images of the plan: read back those already on disk, generate the rest in batches."""
    res, ch = G.img_resolution, G.img_channels
    resize = parse_resize(cfg.resize_to)
    images: list[torch.Tensor | None] = [read_png(out / r.native_file, ch, res) for r in rows]
    if resize:  # a seed counts as done only when its training copy exists too
        images = [im if (out / r.file).is_file() else None for im, r in zip(images, rows)]
    todo = [i for i, im in enumerate(images) if im is None]
    check_disk(out, len(todo), ch, res, resize)
    for chunk in batches(todo, cfg.batch):
        imgs = generate(G, [rows[i].seed for i in chunk], [rows[i].class_idx for i in chunk],
                        cfg.trunc, cfg.device, cfg.precision)
        for i, img in zip(chunk, imgs):
            img = turn_back(img, rows[i].class_name, rows[i].seed, orient)
            save_png(img, out / rows[i].native_file)
            if resize:
                save_png(img, out / rows[i].file, resize)
            images[i] = img
    log(f"generated {len(todo)} samples, reused {len(rows) - len(todo)} already in {out}")
    return torch.stack(images), len(todo)  # type: ignore[arg-type]


def _load_judge(cfg: SampleConfig, used: list[str], res: int, channels: int, log: Callable):
    if not cfg.judge:
        return None, None
    judge = load_classifier(cfg.judge, device=cfg.device)
    missing = [c for c in used if c not in judge.classes]
    if missing:
        raise UserError(f"judge {cfg.judge} was trained on classes {judge.classes}, not {missing}; "
                        "train the judge on the generator's data (classify train --data ...)")
    if judge.in_chans != channels:
        raise UserError(f"judge {cfg.judge} takes {judge.in_chans}-channel images but the generator makes "
                        f"{channels}-channel ones; train the judge on the same data as the generator")
    note = None
    if judge.res != res:
        note = (f"samples are {res}px, the judge was trained at {judge.res}px: samples are resized to "
                f"{judge.res}px for it")
        log(note)
    return judge, note


def _extractor(cfg: SampleConfig, judge):
    from gen.core.metrics import build_extractor  # noqa: PLC0415 — loads torch-fidelity: only for the filters that use it

    kind = cfg.features or ("judge" if judge is not None else "inception" if cfg.inception_weights else None)
    if kind is None:
        return None
    if kind == "judge" and judge is None:
        raise UserError("--features judge needs --judge MODEL")
    weights = cfg.inception_weights if kind == "inception" else None
    return build_extractor(kind, weights_path=weights, judge=judge, device=cfg.device,
                           batch=max(cfg.batch, 16))


def _real_sets(cfg: SampleConfig, info: dict, used: list[str], classes: list[str], extractor, channels: int,
               split: str) -> dict[int, RealSet]:
    """The reals of one split per class index, with their features when there is an extractor. The
    train split is what the filters compare with; the val split only feeds the report's held-out
    checks (no filter sees it, so the report cannot have been tuned on it)."""
    raw = load_reals(cfg.data_dir or info.get("data_dir", ""), used, info["res"], channels,
                     info.get("fit", "crop"), split=split)
    return {classes.index(name): RealSet(extractor.features(imgs).double() if extractor is not None else None,
                                         imgs, files)
            for name, (imgs, files) in raw.items()}


def _note_other_data(cfg: SampleConfig, info: dict, log: Callable) -> None:
    if cfg.data_dir and info.get("manifest_hash"):
        now = str(open_prepared(cfg.data_dir).manifest_hash)
        if now != info["manifest_hash"]:
            log(f"note: --data {cfg.data_dir} is not the data the generator was trained on (manifest hash "
                f"{info['manifest_hash'][:12]} -> {now[:12]}); the filters compare samples with its "
                "train images")


def _csv_table(rows: list[PlanRow], cfg: SampleConfig, snapshot: str, outcome,
               reals: dict) -> tuple[list, list]:
    cols = outcome.columns
    header = ["file", "seed", "class", "trunc", "snapshot"] + (["native_file"] if cfg.resize_to else [])
    header += [c for c in SCORE_COLUMNS if c in cols]
    header += (["nearest_real"] if "nearest_real_index" in cols else [])
    header += (["duplicate_of"] if "duplicate_of_row" in cols else []) + ["accepted", "rejected_by"]
    table = []
    for i, r in enumerate(rows):
        vals = {"file": r.file, "seed": r.seed, "class": r.class_name, "trunc": cfg.trunc,
                "snapshot": snapshot, "native_file": r.native_file, "accepted": int(outcome.accepted[i]),
                "rejected_by": outcome.rejected_by[i]}
        vals.update({c: cols[c][i] for c in SCORE_COLUMNS if c in cols})
        if "nearest_real_index" in cols:
            j = int(cols["nearest_real_index"][i])
            vals["nearest_real"] = reals[r.class_idx].files[j] if j >= 0 and reals[r.class_idx].files else ""
        if "duplicate_of_row" in cols:
            j = int(cols["duplicate_of_row"][i])
            vals["duplicate_of"] = rows[j].seed if j >= 0 else ""
        table.append([vals[h] for h in header])
    return header, table


def _sample_info(cfg: SampleConfig, info: dict, snapshot: str, seeds: list[int], extra: dict) -> dict:
    return {
        "generator": info.get("generator_path"), "snapshot": snapshot, "kimg": info.get("kimg"),
        "classes": info["classes"], "res": info["res"], "channels": info["channels"], "fit": info.get("fit"),
        "real_counts": info.get("real_counts", {}), "manifest_hash": info.get("manifest_hash"),
        # What the generator learned from (the ablation's leak guard checks it per class).
        "seen_md5": info.get("seen_md5"), "recipe": info.get("recipe"), "aug": info.get("aug"),
        "orient": info.get("orient"),
        "data_dir": cfg.data_dir or info.get("data_dir"), "trunc": cfg.trunc, "resize_to": cfg.resize_to,
        "n": len(seeds), "seed_min": min(seeds), "seed_max": max(seeds), "class": cfg.class_name,
        "judge": cfg.judge, "filters": cfg.filters.to_dict(), **extra,
    }


@dataclass
class Scorers:
    """The judge, the feature extractor and the reals: loaded before any image is generated, so a
    wrong judge or data folder fails in seconds, not after the whole --n."""

    judge: Any
    note: str | None
    extractor: Any
    reals: dict  # class index -> RealSet of the train reals ({} when the data folder is not at hand)
    heldout: dict  # class index -> RealSet of the val reals, for the report only


def _scorers(cfg, classes, used, info, log) -> Scorers:
    judge, note = _load_judge(cfg, used, info["res"], info["channels"], log)
    wanted = [f for f in cfg.filters.filters if f in FEATURE_FILTERS]
    extractor = _extractor(cfg, judge)
    if wanted and extractor is None:
        raise UserError(f"filters {wanted} compare features with the train reals: pass --judge MODEL "
                        "(or --inception-weights PATH), or choose --filters without them")
    needs_reals = extractor is not None or any(f in REAL_FILTERS for f in cfg.filters.filters)
    data_dir = cfg.data_dir or info.get("data_dir", "")
    if not needs_reals and not (data_dir and Path(data_dir).is_dir()):
        log("note: the generator's data folder is not here, so the report has no domain-gap check "
            "(pass --data)")
        return Scorers(judge, note, extractor, {}, {})
    _note_other_data(cfg, info, log)
    if not needs_reals:
        try:  # only the report's domain-gap block wants them: never a reason to stop
            reals = _real_sets(cfg, info, used, classes, None, info["channels"], "train")
            heldout = _real_sets(cfg, info, used, classes, None, info["channels"], "val")
        except UserError as exc:
            log(f"note: no domain-gap check in the report ({exc})")
            return Scorers(judge, note, extractor, {}, {})
        return Scorers(judge, note, extractor, reals, heldout)
    reals = _real_sets(cfg, info, used, classes, extractor, info["channels"], "train")
    _check_outlier_reals(cfg, reals, classes)
    heldout = _real_sets(cfg, info, used, classes, extractor, info["channels"], "val")
    return Scorers(judge, note, extractor, reals, heldout)


def _check_outlier_reals(cfg: SampleConfig, reals: dict, classes: list[str]) -> None:
    """The outlier filter fits two detectors per class on its reals: refuse too few before generating."""
    few = {classes[c]: len(rs.images) for c, rs in reals.items() if len(rs.images) < MIN_IMAGES}
    if "outlier" in cfg.filters.filters and few:
        listed = ", ".join(f"{name!r} has {n}" for name, n in few.items())
        raise UserError(f"the outlier filter needs at least {MIN_IMAGES} real train images per sampled class "
                        f"({listed}); drop outlier from --filters or prepare more images")


def _score(cfg, images, rows, scorers: Scorers, manual: np.ndarray | None = None):
    """Judge probabilities, features and the filter outcome (None parts when not asked)."""
    judge, extractor, reals = scorers.judge, scorers.extractor, scorers.reals
    class_idx = np.array([r.class_idx for r in rows])
    feats, conf = None, None
    if extractor is not None:
        feats = extractor.features(images).double()
    if judge is not None:
        # When the judge is also the feature extractor, its head turns the features just computed
        # into probabilities: one backbone pass over the samples instead of two.
        shared = feats is not None and getattr(extractor.module, "judge", None) is judge
        probs = judge.probs_from_features(feats.float()) if shared else judge.predict_proba(images)
        conf = probs[torch.arange(len(rows)),
                     [judge.classes.index(r.class_name) for r in rows]].double().numpy()
    return run_filters(FilterInputs(feats, images, class_idx, reals, conf), cfg.filters, manual), feats


def _excluded_by_hand(rows: list[PlanRow], path: str | None, log: Callable) -> np.ndarray | None:
    """The samples a person ruled out (browse.html's exclude.txt), as a mask: `run_filters` rejects
    them as 'manual' before any filter, keeps them in samples.csv and counts them in the report."""
    if not path:
        return None
    listed = read_exclude_list(path)
    mask = np.array([listed.matches({"seed": str(r.seed), "file": r.file, "native_file": r.native_file})
                     for r in rows], dtype=bool)
    unmatched = len(listed.seeds) + len(listed.files) - int(mask.sum())
    if unmatched > 0:
        log(f"note: {unmatched} line(s) of {path} match no sample of this set")
    return mask


def _validate(cfg: SampleConfig) -> None:
    """Settings that cannot work, refused before any image is generated."""
    check_trunc(cfg.trunc)
    # Samples beside real images would be taken for reals by a later `classify prepare folder:`.
    refuse_output_in_prepared(cfg.out_dir)
    wanted = [f for f in cfg.filters.filters if f in FEATURE_FILTERS]
    if "outlier" in cfg.filters.filters and not 0.0 < cfg.filters.outlier_percentile <= 100.0:
        raise UserError(f"--outlier-percentile {cfg.filters.outlier_percentile} must be in (0, 100]")
    if "judge" in cfg.filters.filters and not cfg.judge:
        raise UserError("the judge filter needs --judge MODEL (a `classify train` model.pt); "
                        "or leave judge out of --filters")
    if wanted and not (cfg.judge or cfg.inception_weights):
        raise UserError(f"filters {wanted} compare features with the train reals: pass --judge MODEL "
                        "(or --inception-weights PATH), or choose --filters without them")


def run_sample(cfg: SampleConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate (or resume), filter, and write the sample set; returns the filter report. One
    writer per sample folder: a second `gen sample` into the same --out fails at once."""
    _validate(cfg)
    with folder_lock(cfg.out_dir, "gen sample", log):
        return _run_sample(cfg, log)


def _run_sample(cfg: SampleConfig, log: Callable[[str], None]) -> dict[str, Any]:
    G, info = load_generator(cfg.generator, which=cfg.snapshot, device=cfg.device)
    log(f"generator: {info['generator_path']}")  # "best" falls back to latest without best.json: say which
    info = {**info, "res": G.img_resolution, "channels": G.img_channels}
    classes = list(info.get("classes") or ["sample"])
    if len(classes) != max(G.c_dim, 1):
        raise UserError(f"{info['generator_path']} lists {len(classes)} classes but its network has "
                        f"c_dim={G.c_dim}; re-export it")
    out, snapshot = Path(cfg.out_dir), Path(info["generator_path"]).name
    _check_resume(out, cfg, snapshot)
    # Refuse an impossible --n before building per-seed lists (resumed PNGs need no new space).
    on_disk = sum(1 for _ in (out / "images").rglob("seed*.png")) if (out / "images").is_dir() else 0
    check_disk(out, count_seeds(cfg.seeds, cfg.n) - on_disk, G.img_channels, G.img_resolution,
               parse_resize(cfg.resize_to))
    seeds = parse_seeds(cfg.seeds, cfg.n)
    rows = plan(seeds, classes, cfg.class_name, cfg.resize_to is not None, info.get("real_counts"))
    used = sorted({r.class_name for r in rows}, key=classes.index)
    scorers = _scorers(cfg, classes, used, info, log)
    # Written before the first PNG so that a killed run's folder still says what made it.
    atomic_write_json(out / "sample_info.json",
                      _sample_info(cfg, info, snapshot, seeds, {"status": "generating"}))
    images, n_new = _produce(G, rows, cfg, out, log, info.get("orient"))
    outcome, feats = _score(cfg, images, rows, scorers, _excluded_by_hand(rows, cfg.exclude, log))
    reals, extractor, note = scorers.reals, scorers.extractor, scorers.note
    label = extractor.label if extractor is not None else None
    class_idx = np.array([r.class_idx for r in rows])
    report = build_filter_report(outcome, class_idx, classes, feats,
                                 {c: rs.feats for c, rs in reals.items() if rs.feats is not None}, label,
                                 {c: rs.feats for c, rs in scorers.heldout.items() if rs.feats is not None})
    report["domain_gap"] = domain_gap(images, feats, class_idx, outcome.accepted, classes, reals,
                                      scorers.heldout)
    report["judge_note"] = note
    header, table = _csv_table(rows, cfg, snapshot, outcome, reals)
    write_csv(out / "samples.csv", header, table)
    atomic_write_json(out / "sample_info.json", _sample_info(cfg, info, snapshot, seeds, {
        "status": "done", "extractor": label, "judge_note": note, "generated_this_run": n_new}))
    atomic_write_json(out / "filter_report.json", report)
    lines = summary_lines(report)
    nearest = None
    if "nearest_real_index" in outcome.columns:
        idx = outcome.columns["nearest_real_index"]
        nearest = (outcome.columns["nearest_real_distance"],
                   [reals[r.class_idx].images[int(j)] if j >= 0 else None for r, j in zip(rows, idx)], seeds)
    grids = write_grids(out, images, outcome.accepted, outcome.rejected_by,
                        np.array([r.class_idx for r in rows]), classes, nearest)
    gap = gap_lines(report["domain_gap"])
    write_sample_index(out, grids, header, [[fmt_cell(v) for v in r] for r in table], lines, gap)
    write_browser(out, header, [[fmt_cell(v) for v in r] for r in table], images,
                  {classes[c]: rs.images for c, rs in reals.items()},
                  outcome.columns.get("nearest_real_index"))
    for line in lines + gap:
        log(line)
    if not outcome.accepted.any() and cfg.filters.filters:
        raise UserError(explain_empty(outcome) + f" (scores are in {out / 'samples.csv'})")
    return report
