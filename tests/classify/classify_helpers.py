"""Helpers of the classify tests: tiny prepared datasets (built through the data layer), and the
ablation's fake cell functions and data facts, so the runner and report run without training."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from classify.ablate.cell import CellTask
from classify.ablate.config import AblationConfig
from classify.ablate.runner import plan_ablation, run_ablation
from classify.ablate.sample_check import DataFacts
from classify.core.runlock import claim, folder_lock
from classify.data.prepare import PrepareConfig, prepare_dataset


def write_square_images(folder: Path, n: int, defect: bool, seed: int, size: int = 32,
                        noise: int = 20) -> None:
    """Grey noisy images; defects carry one bright 8x8 square somewhere (the obvious signal)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(110 - noise, 110 + noise, size=(size, size)).astype(np.uint8)
        if defect:
            top, left = rng.integers(0, size - 8, size=2)
            img[top:top + 8, left:left + 8] = 250
        Image.fromarray(img, mode="L").save(folder / f"{'bad' if defect else 'good'}{i:03d}.png")


def make_square_dataset(root: Path, n_good: int = 48, n_bad: int = 24, size: int = 32) -> Path:
    """Prepare a two-class (bad/good) grayscale set under root/data and return that folder."""
    images = root / "square_images"
    write_square_images(images / "good", n_good, defect=False, seed=1, size=size)
    write_square_images(images / "bad", n_bad, defect=True, seed=2, size=size)
    out = root / "square_data"
    prepare_dataset(PrepareConfig(source=f"folder:{images}", out_dir=str(out)))
    return out


def make_samples_folder(root: Path, n_accepted: int = 12, n_rejected: int = 12, size: int = 32,
                        cls: str = "bad") -> Path:
    """A hand-made `gen sample` folder: accepted samples are white (255), rejected black (0),
    so a test can tell from pixels alone which kind reached the training set."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    lines = ["file,seed,class,trunc,snapshot,judge_confidence,accepted,rejected_by"]
    for i in range(n_accepted + n_rejected):
        accepted = i < n_accepted
        name = f"images/seed{i:04d}.png"
        Image.fromarray(np.full((size, size), 255 if accepted else 0, np.uint8), mode="L").save(root / name)
        lines.append(f"{name},{i},{cls},1.0,net.pkl,{0.9 if accepted else 0.1},{int(accepted)},"
                     f"{'' if accepted else 'judge_confidence'}")
    (root / "samples.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def make_class_samples_folder(root: Path, per_class: dict[str, int], size: int = 32) -> Path:
    """A hand-made `gen sample` folder with accepted samples of several classes; every sample of
    class k has the grey value 40 + 50 k, so a test can tell from pixels which class it came from."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["file,seed,class,trunc,snapshot,judge_confidence,accepted,rejected_by"]
    seed = 0
    for k, (cls, n) in enumerate(per_class.items()):
        (root / "images" / cls).mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            name = f"images/{cls}/seed{seed:04d}.png"
            Image.fromarray(np.full((size, size), 40 + 50 * k, np.uint8), mode="L").save(root / name)
            lines.append(f"{name},{seed},{cls},1.0,net.pkl,0.9,1,")
            seed += 1
    (root / "samples.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# ---- the ablation with an injected fake cell function (tests/classify/test_ablate*.py) ----------
FACTS = DataFacts(classes=["defective", "ok"], train_counts={"defective": 40, "ok": 200}, manifest_hash="h1")


def fake_facts(_data_dir: str) -> DataFacts:
    return FACTS


def fake_cell(task: CellTask) -> dict:
    """Metrics with a built-in effect: GAN arms +0.10 minority F1, others equal up to noise."""
    c = task.cell
    rng = np.random.default_rng(zlib.crc32(f"{c.strategy}/{c.seed}".encode()))
    gain = 0.10 if "gan" in c.strategy else 0.0
    f1 = 0.5 + gain + 0.02 * c.seed + float(rng.normal(0, 0.004))
    y_true = [0] * 20 + [1] * 5
    y_score = list(np.linspace(0, 1, 25))
    return {"train": {"best_epoch": 1},
            "metrics": {"minority_f1": f1, "average_precision": f1 + 0.1, "roc_auc": 0.8,
                        "balanced_accuracy": 0.7, "ece": 0.1 - gain / 2, "n": 25, "y_true": y_true,
                        "y_score": y_score,
                        "pr": {"precision": [1.0, 0.8, 0.5], "recall": [0.0, 0.5, 1.0]},
                        "synthetic_dir": task.train["synthetic_dir"]}}


def oversample_helps(task: CellTask) -> dict:
    out = fake_cell(task)
    if task.cell.strategy == "oversample":
        for key in ("minority_f1", "average_precision"):
            out["metrics"][key] += 0.05
    return out


def broken_cell(task: CellTask) -> dict:
    if task.cell.seed == 1:
        raise RuntimeError("exploded on purpose")
    return fake_cell(task)


def make_samples(tmp_path: Path, real_seen: int, classes=("defective",), res: int = 16, n: int = 120) -> str:
    """A samples.csv/sample_info.json pair; every fourth of the n rows is rejected."""
    d = tmp_path / f"samples_{real_seen}_{res}_{n}"
    d.parent.mkdir(parents=True, exist_ok=True)
    d.mkdir()
    rows = [f"img/{i}.png,{i},defective,1.0,net.pt,{int(i % 4 != 0)},{'judge' if i % 4 == 0 else ''}"
            for i in range(n)]
    (d / "samples.csv").write_text("file,seed,class,trunc,snapshot,accepted,rejected_by\n"
                                   + "\n".join(rows) + "\n")
    (d / "sample_info.json").write_text(json.dumps(
        {"classes": list(classes), "res": res, "channels": 1, "real_counts": {"defective": real_seen},
         "manifest_hash": "h1"}))
    Image.new("L", (8, 8), 128).save(d / "accepted.png")
    return str(d)


def config(tmp_path: Path, **kw) -> AblationConfig:
    base = dict(data_dir=str(tmp_path / "data"), out_dir=str(tmp_path / "abl"),
                strategies=["baseline", "oversample"], models=["resnet18"], seeds=[0, 1], epochs=1, res=16,
                batch=8)
    return AblationConfig.from_dict(base | kw)


def run(cfg, shard=None, cell_fn=fake_cell, jobs=1):
    plan = plan_ablation(cfg, shard, jobs=jobs, inspect=fake_facts)
    return plan, run_ablation(plan, jobs=jobs, cell_fn=cell_fn)


# ---- targets of spawned processes (a spawned child imports them by this module's plain name) ----
def hold_folder_lock(folder: str, ready, release) -> None:
    """Hold `folder`'s run lock until `release` is set (another writer, in another process)."""
    with folder_lock(folder, "test holder"):
        ready.set()
        release.wait(20)


def claim_and_hold(path: str, ready, release) -> None:
    """Claim an ablation cell's lock file and hold it until `release` is set."""
    with claim(path, "cell") as mine:
        assert mine
        ready.set()
        release.wait(20)
