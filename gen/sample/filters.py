"""Sample filters: each adds score columns and an accept flag; nothing is deleted.

Filters run in a fixed order over all samples. Every score is computed for every sample
(so a person can see *why* and move a threshold later), `accepted` is the AND of the flags,
and `rejected_by` names the first filter that said no. Set-level filters (duplicates,
fid_select) only look at samples still alive, so they never keep a sample that an earlier
filter rejected and never drop a good one because of a bad twin.

Per-class: a sample of class c is compared with the real TRAIN features of class c.

outlier: IsolationForest and OneClassSVM fitted on the real train features of the sample's
class (classify.evaluate.outliers, the scorer of `classify outliers`); both anomaly scores go to
samples.csv (`outlier_iforest`, `outlier_ocsvm`, higher = odder), and a sample is rejected
when BOTH exceed the `outlier_percentile` percentile of the reals' own scores: odder than
nearly every real image of its class by two unrelated detectors.

stats: the obviously wrong. A sample whose mean brightness or contrast lies outside the range
the real train images of its class span (widened by `stats_margin` of that range), or whose
features lie further from the class's feature centroid than any real image does (by the same
margin), is rejected: blank, saturated or inverted images, whatever a judge thinks of them.

twosample: prefer the indistinguishable. A logistic regression learns, on held-out folds, to
tell the class's samples from its real train images on raw pixels
(classify.evaluate.twosample); `twosample_score` is each sample's out-of-fold P(synthetic).
A sample is rejected when it looks more synthetic than `twosample_percentile` percent of the
real images look to the same model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from classify.core.configs import Config, setting
from classify.core.errors import UserError
from classify.evaluate.outliers import fit_outlier_scorer
from classify.evaluate.twosample import image_stats, pixel_features, two_sample_test
from gen.core.setmetrics import knn_radii, pairwise_distances
from gen.sample.fid_select import greedy_fd_selection

ORDER = ("stats", "judge", "realism", "outlier", "twosample", "memorisation", "duplicates", "fid_select")


@dataclass
class FilterConfig(Config):
    """The filters and their thresholds; `gen sample` builds its filter options from these fields."""

    config_name = "filter settings"

    filters: list[str] = setting(help=f"Comma list from {', '.join(ORDER)}, or none.",
                                 default_factory=lambda: ["judge", "realism", "memorisation", "duplicates"])
    min_confidence: float = setting(0.5, "judge filter: keep samples whose judge probability for their class "
                                    "is at least this.")
    max_confidence: float | None = setting(None, "Also reject 'too easy' samples above this.")
    realism_k: int = setting(3, "realism filter: the k of the reals' k-nearest-neighbour radii.")
    min_realism: float = setting(1.0, "realism filter: keep samples whose realism score is at least this "
                                 "(>= 1: inside a real's k-NN ball).")
    memorisation_percentile: float = setting(1.0, "Reject samples closer to a real than this percentile of "
                                             "real-to-real NN distances.")
    outlier_percentile: float = setting(99.0, "outlier filter: reject samples whose IsolationForest and "
                                        "OneClassSVM scores both exceed this percentile of the class's real "
                                        "train images' own scores.")
    # stats: the range is widened by this share of it on each side.
    stats_margin: float = setting(0.05, "stats filter: widen the reals' brightness/contrast/feature-distance "
                                  "range by this share of it.")
    twosample_percentile: float = setting(90.0, "twosample filter: reject samples that look more synthetic "
                                          "than this percentile of the real images (out-of-fold "
                                          "P(synthetic) of a pixel logistic regression).")
    fid_select_max_drop: float = setting(0.2, "fid_select filter: drop at most this fraction of the samples "
                                         "the other filters kept.")
    # Top-K by combined rank instead of the quality thresholds.
    keep: int | None = setting(None, "Keep the top-K by combined judge/realism rank instead.")


@dataclass
class RealSet:
    """Real TRAIN images of one class and their features (same extractor as the samples)."""

    feats: torch.Tensor | None  # [M, D]; None without a feature extractor (stats/twosample need none)
    images: torch.Tensor  # uint8 [M, C, H, W] at the generator's resolution
    files: list[str] = field(default_factory=list)


@dataclass
class FilterInputs:
    feats: torch.Tensor  # [N, D] sample features
    images: torch.Tensor  # uint8 [N, C, H, W]
    class_idx: np.ndarray  # [N] index into the generator's classes
    reals: dict[int, RealSet]
    judge_confidence: np.ndarray | None = None  # [N] p(target class) from the judge


@dataclass
class FilterResult:
    columns: dict[str, np.ndarray]
    accept: np.ndarray  # bool [N]
    info: dict[str, Any] = field(default_factory=dict)  # thresholds actually used, per class


def _judge(inp: FilterInputs, alive: np.ndarray, cfg: FilterConfig) -> FilterResult:
    if inp.judge_confidence is None:
        raise UserError("the judge filter needs a judge model; pass --judge MODEL or drop the judge filter")
    p = np.asarray(inp.judge_confidence, np.float64)
    accept = p >= cfg.min_confidence
    if cfg.max_confidence is not None:
        accept &= p <= cfg.max_confidence  # "too easy" samples teach the classifier nothing new
    return FilterResult({"judge_confidence": p}, accept,
                        {"min": cfg.min_confidence, "max": cfg.max_confidence})


def realism_scores(fake: torch.Tensor, real: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Kynkäänniemi et al. 2019: max over reals of radius_k(real) / |fake − real|; ≥ 1 inside the manifold.

    Every real takes part (the issue's definition). The paper also drops the reals whose radius
    is above the median to resist outliers; measured on the ELPV cpu-tiny generator that cut the
    realism pass rate from 92% to 16% and made the accepted set's FD worse (124 vs 85), so it is
    not the default. Known cost: one far-out real vouches for samples near it.
    """
    radii = knn_radii(real, k)
    dist = pairwise_distances(fake, real).clamp_min(1e-12)  # an exact copy scores huge, not inf
    return (radii[None, :] / dist).max(dim=1).values


DUPLICATE_TOLERANCE = 1e-6  # relative to the median real-to-real NN distance


def near_copy_threshold(real: torch.Tensor, percentile: float) -> float:
    """The distance below which a sample counts as a copy of a real: this percentile of the
    real-to-real nearest-neighbour distances. Duplicate reals are left out (prepare keeps exact
    duplicates, grouped in one split): their ~0 distances would pull the threshold to ~0 and let
    near-copies through. Bit-identical rows go by torch.unique; copies whose features differ by
    float noise (other batch sizes or kernels) by a distance under 1e-6 of the median one."""
    radii = knn_radii(torch.unique(real, dim=0), 1).numpy()
    distinct = radii[radii > DUPLICATE_TOLERANCE * np.median(radii)] if len(radii) else radii
    return float(np.percentile(distinct if len(distinct) else radii, percentile))


def _per_class(inp: FilterInputs, fn) -> None:
    for c in np.unique(inp.class_idx):
        if int(c) not in inp.reals:
            raise UserError(f"no real train images for class index {c}; "
                            "the generator's data folder lacks them")
        fn(int(c), np.flatnonzero(inp.class_idx == c), inp.reals[int(c)])


def _realism(inp: FilterInputs, alive: np.ndarray, cfg: FilterConfig) -> FilterResult:
    score = np.zeros(len(inp.class_idx))

    def realism_of_class(c: int, rows: np.ndarray, real: RealSet) -> None:
        score[rows] = realism_scores(inp.feats[rows], real.feats, cfg.realism_k).numpy()

    _per_class(inp, realism_of_class)
    return FilterResult({"realism_score": score}, score >= cfg.min_realism,
                        {"k": cfg.realism_k, "min": cfg.min_realism})


def _outlier(inp: FilterInputs, alive: np.ndarray, cfg: FilterConfig) -> FilterResult:
    if not 0.0 < cfg.outlier_percentile <= 100.0:
        raise UserError(f"--outlier-percentile {cfg.outlier_percentile} must be in (0, 100]")
    n = len(inp.class_idx)
    iso, svm, accept, info = np.zeros(n), np.zeros(n), np.ones(n, bool), {}

    def outliers_of_class(c: int, rows: np.ndarray, real: RealSet) -> None:
        scorer = fit_outlier_scorer(real.feats.double().numpy(), f"class index {c}'s real train set",
                                    "drop outlier from --filters")
        ref_iso, ref_svm = scorer.scores(real.feats.double().numpy())
        thr = (float(np.percentile(ref_iso, cfg.outlier_percentile)),
               float(np.percentile(ref_svm, cfg.outlier_percentile)))
        iso[rows], svm[rows] = scorer.scores(inp.feats[rows].double().numpy())
        accept[rows] = ~((iso[rows] > thr[0]) & (svm[rows] > thr[1]))
        info[str(c)] = {"iforest_threshold": thr[0], "ocsvm_threshold": thr[1],
                        "percentile": cfg.outlier_percentile, "n_real": len(real.feats)}

    _per_class(inp, outliers_of_class)
    return FilterResult({"outlier_iforest": iso, "outlier_ocsvm": svm}, accept, info)


STAT_COLUMNS = ("brightness", "contrast")


def _stats(inp: FilterInputs, alive: np.ndarray, cfg: FilterConfig) -> FilterResult:
    if not 0.0 <= cfg.stats_margin <= 1.0:
        raise UserError(f"--stats-margin {cfg.stats_margin} must be in [0, 1]")
    n = len(inp.class_idx)
    ours = image_stats(inp.images)
    cols = {name: ours[name] for name in STAT_COLUMNS}
    distance = np.full(n, np.nan)
    accept, info = np.ones(n, bool), {}

    def range_of_class(c: int, rows: np.ndarray, real: RealSet) -> None:
        theirs, bounds = image_stats(real.images), {}
        for name in STAT_COLUMNS:
            low, high = float(theirs[name].min()), float(theirs[name].max())
            pad = cfg.stats_margin * (high - low)
            bounds[name] = [low - pad, high + pad]
            accept[rows] &= (ours[name][rows] >= low - pad) & (ours[name][rows] <= high + pad)
        if inp.feats is not None and real.feats is not None:
            centre = real.feats.mean(0)
            limit = float((real.feats - centre).norm(dim=1).max()) * (1 + cfg.stats_margin)
            distance[rows] = (inp.feats[rows] - centre).norm(dim=1).numpy()
            accept[rows] &= distance[rows] <= limit
            bounds["centroid_distance"] = [0.0, limit]
        info[str(c)] = bounds

    _per_class(inp, range_of_class)
    if inp.feats is not None:
        cols["centroid_distance"] = distance
    return FilterResult(cols, accept, {"margin": cfg.stats_margin, "bounds": info})


def _twosample(inp: FilterInputs, alive: np.ndarray, cfg: FilterConfig) -> FilterResult:
    if not 0.0 < cfg.twosample_percentile <= 100.0:
        raise UserError(f"--twosample-percentile {cfg.twosample_percentile} must be in (0, 100]")
    n = len(inp.class_idx)
    score, accept, info = np.full(n, np.nan), np.ones(n, bool), {}

    def gap_of_class(c: int, rows: np.ndarray, real: RealSet) -> None:
        if len(rows) < 2 or len(real.images) < 2:
            return  # too few to fit; the report says so
        # Every sample of the class gets an out-of-fold score (no subsampling), alive or not, so a
        # sample's score does not depend on what earlier filters did.
        res = two_sample_test(pixel_features(real.images), pixel_features(inp.images[rows]),
                              max_per_side=max(len(rows), len(real.images)))
        threshold = float(np.percentile(res.real_scores, cfg.twosample_percentile))
        score[rows] = res.synthetic_scores
        accept[rows] = res.synthetic_scores <= threshold
        info[str(c)] = {"auc": round(res.auc, 4), "threshold": threshold,
                        "percentile": cfg.twosample_percentile, "folds": res.folds}

    _per_class(inp, gap_of_class)
    return FilterResult({"twosample_score": score}, accept, info)


def _memorisation(inp: FilterInputs, alive: np.ndarray, cfg: FilterConfig) -> FilterResult:
    n = len(inp.class_idx)
    feat_d, pix_d, nearest = np.zeros(n), np.zeros(n), np.full(n, -1)
    accept, info = np.ones(n, bool), {}

    def nearest_reals_of_class(c: int, rows: np.ndarray, real: RealSet) -> None:
        d = pairwise_distances(inp.feats[rows], real.feats)
        feat_d[rows], nearest[rows] = d.min(1).values.numpy(), d.argmin(1).numpy()
        # The threshold comes from the reals themselves: a sample closer to a train image
        # than nearly all reals are to each other is a near-copy, whatever the feature scale.
        thr = near_copy_threshold(real.feats, cfg.memorisation_percentile)
        accept[rows] = feat_d[rows] > thr
        info[str(c)] = {"threshold": thr, "percentile": cfg.memorisation_percentile}
        flat = lambda x: x.reshape(len(x), -1).double() / 255.0  # noqa: E731
        # RMS pixel difference in [0, 1]: reported for people, not used to decide.
        pix_d[rows] = (pairwise_distances(flat(inp.images[rows]), flat(real.images),
                                          exact=False).min(1).values
                       / np.sqrt(real.images[0].numel())).numpy()

    _per_class(inp, nearest_reals_of_class)
    cols = {"nearest_real_distance": feat_d, "nearest_real_pixel_distance": pix_d,
            "nearest_real_index": nearest}
    return FilterResult(cols, accept, info)


def _duplicates(inp: FilterInputs, alive: np.ndarray, cfg: FilterConfig) -> FilterResult:
    """Exact (same bytes) and near (closer than the memorisation threshold) duplicates among
    alive samples; the first one in row (seed) order is kept."""
    n = len(inp.class_idx)
    dup_of, accept = np.full(n, -1), np.ones(n, bool)

    def duplicates_in_class(c: int, rows: np.ndarray, real: RealSet) -> None:
        rows = rows[alive[rows]]
        thr = near_copy_threshold(real.feats, cfg.memorisation_percentile)
        dist = pairwise_distances(inp.feats[rows], inp.feats[rows]).numpy()  # one pass, not one per row
        seen: dict[str, int] = {}
        kept: list[int] = []  # positions in `rows`
        for k, i in enumerate(rows):
            digest = hashlib.md5(inp.images[i].numpy().tobytes()).hexdigest()
            twin = seen.get(digest)
            if twin is None and kept:
                near = int(np.argmin(dist[k, kept]))
                twin = int(rows[kept[near]]) if dist[k, kept[near]] <= thr else None
            if twin is None:
                seen[digest] = int(i)
                kept.append(k)
            else:
                dup_of[i], accept[i] = twin, False

    _per_class(inp, duplicates_in_class)
    return FilterResult({"duplicate_of_row": dup_of}, accept)


def _fid_select(inp: FilterInputs, alive: np.ndarray, cfg: FilterConfig) -> FilterResult:
    n = len(inp.class_idx)
    # kept is NaN (an empty cell) for samples fid_select never looked at: rejected earlier, or
    # in a class with too few survivors. "1 = kept" would claim a decision that was not made.
    accept, kept, info = np.ones(n, bool), np.full(n, np.nan), {}

    def fd_subset_of_class(c: int, rows: np.ndarray, real: RealSet) -> None:
        rows = rows[alive[rows]]
        if len(rows) < 4:
            return
        res = greedy_fd_selection(inp.feats[rows].double().numpy(), real.feats.double().numpy(),
                                  max_drop=int(cfg.fid_select_max_drop * len(rows)))
        accept[rows] = res.keep
        kept[rows] = res.keep
        info[str(c)] = {"fd_start": res.history[0], "fd_end": res.history[-1],
                        "dropped": len(res.removed_order)}

    _per_class(inp, fd_subset_of_class)
    return FilterResult({"fid_select_kept": kept}, accept, info)


FILTERS = {"stats": _stats, "judge": _judge, "realism": _realism, "outlier": _outlier,
           "twosample": _twosample, "memorisation": _memorisation, "duplicates": _duplicates,
           "fid_select": _fid_select}


def list_filters() -> list[str]:
    return list(ORDER)


def build(name: str, **kw: Any):
    """The filter function for `name`, with settings bound: fn(inputs, alive_mask) -> FilterResult."""
    if name not in FILTERS:
        raise UserError(f"unknown filter {name!r}; choose from {', '.join(ORDER)}")
    cfg = FilterConfig(**kw) if kw else FilterConfig()
    return lambda inp, alive: FILTERS[name](inp, alive, cfg)


# The scores --keep ranks by, with the direction that is better: a confident judge, a sample inside
# the real manifold, and one the two-sample classifier finds least synthetic.
QUALITY_SCORES = {"judge_confidence": 1.0, "realism_score": 1.0, "twosample_score": -1.0}
# Under --keep these filters only score: their score ranks, the other filters still decide.
RANKING_FILTERS = ("judge", "realism", "twosample")


@dataclass
class FilterOutcome:
    columns: dict[str, np.ndarray]
    accepted: np.ndarray  # bool [N]
    rejected_by: list[str]  # "" when accepted
    info: dict[str, Any]


def _combined_rank(columns: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Mean rank (0 = best) over the quality scores present, for `rows`."""
    ranks = []
    for name, better in QUALITY_SCORES.items():
        if name in columns:
            order = np.argsort(-better * np.nan_to_num(columns[name][rows], nan=-better * np.inf),
                               kind="stable")
            r = np.empty(len(rows))
            r[order] = np.arange(len(rows))
            ranks.append(r)
    if not ranks:
        raise UserError("--keep ranks by judge confidence, realism and the two-sample score; "
                        "enable the judge, realism or twosample filter")
    return np.mean(ranks, axis=0)


def run_filters(inp: FilterInputs, cfg: FilterConfig, manual: np.ndarray | None = None) -> FilterOutcome:
    """Run the enabled filters in ORDER; with cfg.keep, judge/realism/twosample only score and the
    top-K survivors of the other filters by combined rank are kept. `manual` marks samples a person
    ruled out: rejected as 'manual' before any filter, so set-level filters and --keep fill their
    places from the rest."""
    unknown = [f for f in cfg.filters if f not in FILTERS]
    if unknown:
        raise UserError(f"unknown filter(s) {unknown}; choose from {', '.join(ORDER)}")
    n = len(inp.class_idx)
    alive, rejected_by = np.ones(n, bool), [""] * n
    columns: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"config": cfg.to_dict()}
    if manual is not None and manual.any():
        alive &= ~manual
        rejected_by = ["manual" if m else "" for m in manual]
        info["manual"] = {"excluded": int(manual.sum()), "pass_alone": float(1 - manual.mean()),
                          "decides": True, "alive_after": int(alive.sum())}
    for name in (f for f in ORDER if f in cfg.filters):
        res = FILTERS[name](inp, alive, cfg)
        columns.update(res.columns)
        decides = cfg.keep is None or name not in RANKING_FILTERS
        info[name] = {**res.info, "pass_alone": float(res.accept.mean()) if n else 0.0, "decides": decides}
        if not decides:
            continue
        for i in np.flatnonzero(alive & ~res.accept):
            rejected_by[i] = name
        alive &= res.accept
        info[name]["alive_after"] = int(alive.sum())
    if cfg.keep is not None:
        rows = np.flatnonzero(alive)
        rank = np.full(n, np.nan)
        if len(rows):
            rank[rows] = _combined_rank(columns, rows)
        columns["combined_rank"] = rank
        for i in rows[np.argsort(rank[rows], kind="stable")[cfg.keep :]]:
            alive[i], rejected_by[i] = False, "keep_rank"
        info["keep"] = {"k": cfg.keep, "alive_after": int(alive.sum())}
    return FilterOutcome(columns, alive, rejected_by, info)


def explain_empty(outcome: FilterOutcome) -> str:
    """One line: which filter removed the last samples, with its score distribution."""
    names = [n for n in ORDER if n in outcome.info and outcome.info[n].get("alive_after") == 0]
    culprit = names[0] if names else "keep_rank"
    col = {"judge": "judge_confidence", "realism": "realism_score", "outlier": "outlier_iforest",
           "memorisation": "nearest_real_distance", "stats": "brightness",
           "twosample": "twosample_score"}.get(culprit)
    dist = ""
    if col and col in outcome.columns and len(outcome.columns[col]):
        v = outcome.columns[col]
        dist = f"; {col} min {v.min():.3g} / median {np.median(v):.3g} / max {v.max():.3g}"
    return (f"no sample was accepted: filter '{culprit}' removed the last ones{dist}; "
            "relax its threshold or train the generator longer")
