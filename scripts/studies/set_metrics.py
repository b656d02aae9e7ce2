"""Held-out set metrics of GAN sample sets, beside the floor that real images reach.

For each `gen sample` folder: FD and KD in the judge's penultimate features, and precision,
recall, density and coverage (k=5), of the samples against the minority class's VAL reals
(images no generator and no filter saw). FD and KD depend on n, so every set is scored at the
same n (the number of val reals, or the train reals when fewer), as the mean over `--repeats`
random subsets; the *floor* is what real train images of the class score against the same val
reals at that n. A ratio FD / floor of 1 means "as close to the val reals as other real images
are". Both the accepted samples and all samples (a random subset, i.e. no selection) are scored.

    python scripts/studies/set_metrics.py --data DATA --judge JUDGE.pt --out set_metrics.json SAMPLES_DIR...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from classify.data.dataset import open_prepared
from classify.model.loading import load_classifier
from classify.train.synthetic import load_synthetic, read_images
from gen.core.setmetrics import frechet_distance, kernel_distance, prdc


def subsets(n_total: int, n: int, repeats: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n_total, n, replace=False)) for _ in range(repeats)]


def score(feats: torch.Tensor, val: torch.Tensor, n: int, repeats: int) -> dict:
    """Mean (and spread) of FD, KD and PRDC over random n-subsets of `feats` against all of `val`."""
    rows = []
    for idx in subsets(len(feats), n, repeats if len(feats) > n else 1, seed=0):
        f = feats[idx]
        rows.append({"fd": frechet_distance(f, val), "kd": kernel_distance(f, val)["mean"],
                     **prdc(f, val, k=5)})
    out = {"n": n, "subsets": len(rows)}
    for key in ("fd", "kd", "precision", "recall", "density", "coverage"):
        values = np.array([r[key] for r in rows])
        out[key], out[key + "_sd"] = float(values.mean()), float(values.std())
    return out


def parser() -> argparse.ArgumentParser:
    """The flags (a function, so the study TOMLs' steps can be checked against it in tests)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--judge", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--class", dest="class_name", default="defective")
    ap.add_argument("--repeats", type=int, default=10)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    judge = load_classifier(args.judge, device="cpu")
    data = open_prepared(args.data)

    def real_feats(split: str) -> torch.Tensor:
        imgs = (data.select(split=split, classes=[args.class_name])
                .images(res=judge.res, channels=judge.in_chans, fit=judge.fit))
        return judge.features(imgs).double()

    val, train = real_feats("val"), real_feats("train")
    n = min(len(val), len(train))
    result = {"class": args.class_name, "n": n, "n_val": len(val), "judge": args.judge,
              "floor": score(train, val, n, args.repeats), "sets": {}}
    for folder in args.samples:
        synth = load_synthetic(folder, accepted_only=False)
        keep = [i for i, r in enumerate(synth.rows) if r["class"] == args.class_name]
        files = [synth.files[i] for i in keep]
        accepted = np.array([synth.rows[i]["accepted"].strip() in ("1", "true", "True") for i in keep])
        feats = judge.features(read_images(files, judge.res, judge.in_chans)).double()
        entry = {"n_samples": len(files), "n_accepted": int(accepted.sum()),
                 "all": score(feats, val, n, args.repeats)}
        if accepted.sum() >= n:
            entry["accepted"] = score(feats[torch.from_numpy(accepted)], val, n, args.repeats)
        for key in ("all", "accepted"):
            if key in entry:
                entry[key]["fd_over_floor"] = entry[key]["fd"] / result["floor"]["fd"]
        result["sets"][Path(folder).name] = entry
        print(f"{Path(folder).name}: FD all {entry['all']['fd']:.1f} "
              f"(floor {result['floor']['fd']:.1f})", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
