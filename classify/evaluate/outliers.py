"""`classify outliers`: the images that do not look like the rest of their class (mislabel review).

Per class, scikit-learn's IsolationForest and OneClassSVM (RBF) are fitted on the standardised
penultimate features of that class's TRAIN images (the model's `features()`). Each image of the
scored split gets both anomaly scores, higher = odder: IsolationForest's `-score_samples`
and OneClassSVM's `-decision_function`. Its rank within its class (1 = the oddest) orders by
the mean of its two per-class ranks, so neither score's scale dominates. OUT/outliers.csv lists
every image; OUT/outliers.png shows the top of each class; OUT/outliers.json the settings
and the top rows of each class.

The same scorer is `gen sample`'s `outlier` filter (gen.sample.filters): there it is fitted on
the real train features of a sample's class and the samples are scored against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classify.core.configs import Config, setting
from classify.core.errors import UserError
from classify.core.fileio import atomic_write_bytes, atomic_write_csv, atomic_write_json
from classify.data.dataset import open_prepared
from classify.data.splits import EVAL_SPLITS
from classify.evaluate.gallery import TileRow, decode_for_display, display_res, tile_figure, to_rgb
from classify.model.loading import check_classes, load_classifier

MIN_IMAGES = 5  # per class: fewer leave IsolationForest's trees and the SVM's support nothing to describe
N_TREES = 200
# scikit-learn's default. Only the order of the SVM's scores is used (ranks, percentile thresholds); a
# small nu lets a few odd images become support vectors on the boundary itself, scoring ~0 like
# ordinary ones (measured on planted points), while 0.5 puts them far outside.
SVM_NU = 0.5
TOP_LISTED = 10  # per class in outliers.json (the reports' tables); every image is in outliers.csv
CSV_COLUMNS = ["file", "class", "split", "iforest_score", "ocsvm_score", "rank", "p_class", "predicted"]


@dataclass
class OutlierScorer:
    """Fitted on one class's features; `scores(feats)` -> (IsolationForest, OneClassSVM) anomaly scores."""

    scaler: object
    iforest: object
    ocsvm: object

    def scores(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = self.scaler.transform(np.asarray(feats, dtype=np.float64))
        return -self.iforest.score_samples(z), -self.ocsvm.decision_function(z)


def fit_outlier_scorer(feats: np.ndarray, what: str, hint: str, seed: int = 0) -> OutlierScorer:
    """Fit both detectors on [N, D] features of one class (`what` names it in errors, `hint`
    says what to do about too few images)."""
    from sklearn.ensemble import IsolationForest  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it
    from sklearn.svm import OneClassSVM  # noqa: PLC0415 — scikit-learn: heavy, only this step needs it

    x = np.asarray(feats, dtype=np.float64)
    if len(x) < MIN_IMAGES:
        raise UserError(f"{what} has {len(x)} image(s); "
                        f"the outlier scorer needs at least {MIN_IMAGES} per class "
                        f"to fit IsolationForest and OneClassSVM; {hint}")
    if not np.isfinite(x).all():
        raise UserError(f"the features of {what} hold NaN or infinite values; "
                        "the model is damaged — retrain it")
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    iforest = IsolationForest(n_estimators=N_TREES, random_state=seed).fit(z)
    ocsvm = OneClassSVM(kernel="rbf", gamma="scale", nu=SVM_NU).fit(z)
    return OutlierScorer(scaler, iforest, ocsvm)


def combined_rank(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 = the oddest: images ordered by the mean of their ranks under both scores (ties: row order)."""
    def positions(s: np.ndarray) -> np.ndarray:
        r = np.empty(len(s))
        r[np.argsort(-s, kind="stable")] = np.arange(len(s))
        return r

    order = np.argsort(positions(a) + positions(b), kind="stable")
    rank = np.empty(len(a), dtype=int)
    rank[order] = np.arange(1, len(a) + 1)
    return rank


@dataclass
class OutlierConfig(Config):
    """Every setting of `classify outliers`; its options are built from these fields."""

    config_name = "outlier config keys"
    renamed = {"model": "model_path", "out": "out_dir", "data": "data_dir"}

    model_path: str  # a model.pt, its run folder or an ensemble (the command's MODEL argument)
    data_dir: str = setting(help="Prepared data folder.", flag="--data", path="dir")
    out_dir: str = setting(help="Folder for outliers.csv/png/json.", flag="--out", path="dir")
    split: str = setting("train", "Images to score; the detectors are always fitted on each class's train "
                         "images.", choices=EVAL_SPLITS)
    per_class: int = setting(8, "Images per class in outliers.png.")
    device: str = setting("cpu", "cpu, cuda, cuda:N or auto.", cli_default="auto")
    seed: int = setting(0, "IsolationForest's random state.")


def _check(cfg: OutlierConfig, clf, data) -> None:
    check_classes(clf, data.classes, cfg.model_path, cfg.data_dir, "score the data it was trained for")
    if cfg.split not in EVAL_SPLITS:
        raise UserError(f"unknown --split {cfg.split!r}; use train, val or test")
    if cfg.per_class < 1:
        raise UserError(f"--per-class must be at least 1, got {cfg.per_class}")


def score_class(cfg: OutlierConfig, clf, data, name: str) -> list[dict]:
    """One row per image of class `name` in the scored split, ranked against the class's train images."""
    train = data.select(split="train", classes=[name])
    x_train = train.images(res=clf.res, channels=clf.in_chans, fit=clf.fit)
    scorer = fit_outlier_scorer(clf.features(x_train).double().numpy(),
                                f"class {name!r} of the train split of {cfg.data_dir}",
                                "prepare more images of it, or leave it out", cfg.seed)
    part = train if cfg.split == "train" else data.select(split=cfg.split, classes=[name])
    if len(part) == 0:
        return []
    x = x_train if cfg.split == "train" else part.images(res=clf.res, channels=clf.in_chans, fit=clf.fit)
    feats = clf.features(x)
    iso, svm = scorer.scores(feats.double().numpy())
    probs = clf.probs_from_features(feats)
    k = clf.classes.index(name)
    rank = combined_rank(iso, svm)
    return [{"file": row["path"], "class": name, "split": cfg.split, "iforest_score": float(iso[i]),
             "ocsvm_score": float(svm[i]), "rank": int(rank[i]), "p_class": float(probs[i, k]),
             "predicted": clf.classes[int(probs[i].argmax())], "_path": part.paths[i]}
            for i, row in enumerate(part.rows)]


def outlier_figure(rows: list[dict], classes: list[str], clf, k: int, title: str) -> bytes:
    """The k oddest images of each class, one row per class."""
    tiles = []
    for name in classes:
        mine = sorted((r for r in rows if r["class"] == name), key=lambda r: r["rank"])
        top = mine[:k]
        images = (to_rgb(decode_for_display([r["_path"] for r in top], display_res(clf.res), clf.in_chans,
                                            clf.fit))
                  if top else [])
        tiles.append(TileRow(f"{name}\n{len(top)} oddest\nof {len(mine)}", list(images),
                             [f"#{r['rank']} p={r['p_class']:.2f}\n{Path(r['file']).name}" for r in top]))
    return tile_figure(tiles, k, title)


def _csv_rows(rows: list[dict]) -> list[list]:
    return [[r["file"], r["class"], r["split"], f"{r['iforest_score']:.6f}", f"{r['ocsvm_score']:.6f}",
             r["rank"], f"{r['p_class']:.6f}", r["predicted"]] for r in rows]


def run_outliers(cfg: OutlierConfig, log: Callable[[str], None] = print) -> dict:
    """Write OUT/outliers.csv, outliers.png and outliers.json; returns the summary."""
    clf = load_classifier(cfg.model_path, device=cfg.device)
    data = open_prepared(cfg.data_dir)
    _check(cfg, clf, data)
    rows: list[dict] = []
    for name in clf.classes:
        rows += sorted(score_class(cfg, clf, data, name), key=lambda r: r["rank"])
    if not rows:
        raise UserError(f"the {cfg.split} split of {cfg.data_dir} is empty; pick another --split")
    out = Path(cfg.out_dir)
    title = (f"most anomalous {cfg.split} images per class (IsolationForest + OneClassSVM on "
             f"{clf.model_name} features of each class's train images); "
             "#rank, p = model's probability of the labelled class")
    atomic_write_csv(out / "outliers.csv", CSV_COLUMNS, _csv_rows(rows))
    atomic_write_bytes(out / "outliers.png", outlier_figure(rows, clf.classes, clf, cfg.per_class, title))
    summary = {"model": str(cfg.model_path), "model_name": clf.model_name, "data": str(cfg.data_dir),
               "split": cfg.split, "fitted_on": "train",
               "scorers": {"iforest": {"n_estimators": N_TREES, "random_state": cfg.seed},
                           "ocsvm": {"kernel": "rbf", "gamma": "scale", "nu": SVM_NU}},
               "features": "standardised penultimate features, per class",
               "counts": {c: sum(1 for r in rows if r["class"] == c) for c in clf.classes},
               "top": {c: [{k: r[k] for k in CSV_COLUMNS} for r in rows if r["class"] == c][:TOP_LISTED]
                       for c in clf.classes},
               "csv": "outliers.csv", "png": "outliers.png"}
    atomic_write_json(out / "outliers.json", summary)
    for name in clf.classes:
        top = [Path(r["file"]).name for r in rows if r["class"] == name][:3]
        log(f"{name}: {summary['counts'][name]} {cfg.split} images scored; "
            f"oddest: {', '.join(top) or 'none'}")
    return summary
