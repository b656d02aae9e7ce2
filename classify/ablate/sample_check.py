"""Checks that a `gen sample` folder may be used by an ablation cell (the leak guard).

A GAN trained on more real minority images than a cell is allowed to see smuggles those extra
images into the cell through its samples: a "scarce data" result would then be measured with
data the cell was not supposed to have. The guard compares `sample_info.json` `real_counts`
with the number of real minority train images the cell keeps. Where the generator recorded
the md5 of every image it saw (`seen_md5`, per class: every recipe does), the guard also
checks *which* images: none may be a val or test image of this data (refused, always), and
minority images outside this data's train split (e.g. ones `--minority-fraction` set aside)
count as a leak like a larger count does.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from classify.core.errors import UserError
from classify.data.dataset import open_prepared
from classify.train.data import choose_minority
from classify.train.synthetic import read_exclude_list


@dataclass(frozen=True)
class DataFacts:
    """What the ablation needs to know about a prepared data folder."""

    classes: list[str]
    train_counts: dict[str, int]  # real train images per class
    manifest_hash: str
    train_md5: dict[str, frozenset[str]] = field(default_factory=dict)  # class -> md5 of its train images
    heldout_md5: frozenset[str] = frozenset()  # md5 of every val and test image


@dataclass(frozen=True)
class SampleCheck:
    samples_dir: str
    generator_real_minority: int
    allowed_real_minority: int
    leak: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"samples_dir": self.samples_dir, "generator_real_minority": self.generator_real_minority,
                "allowed_real_minority": self.allowed_real_minority, "leak": self.leak,
                "warnings": list(self.warnings)}


def inspect_prepared(data_dir: str) -> DataFacts:
    """DataFacts from the data layer (`classify.data.dataset`)."""
    data = open_prepared(data_dir)
    train = data.select(split="train")
    counts = {name: 0 for name in data.classes}
    md5: dict[str, set[str]] = {name: set() for name in data.classes}
    for label, row in zip(train.labels.tolist(), train.rows):
        counts[data.classes[int(label)]] += 1
        md5[data.classes[int(label)]].add(row["md5"])
    heldout = frozenset(row["md5"] for row in data.select(split=["val", "test"]).rows)
    return DataFacts(classes=list(data.classes), train_counts=counts, manifest_hash=str(data.manifest_hash),
                     train_md5={k: frozenset(v) for k, v in md5.items()}, heldout_md5=heldout)


def minority_name(facts: DataFacts, minority_class: str | None, data_dir: str) -> str:
    """The configured minority class, or the rarest train class: the trainer's rule
    (`classify.train.data.choose_minority`)."""
    counts = [facts.train_counts.get(c, 0) for c in facts.classes]
    return facts.classes[choose_minority(counts, facts.classes, minority_class, data_dir)]


def read_sample_info(samples_dir: str) -> dict:
    path = Path(samples_dir) / "sample_info.json"
    if not (Path(samples_dir) / "samples.csv").is_file():
        raise UserError(f"{samples_dir} has no samples.csv; point --samples at a `gen sample` output folder")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing; "
                        "rerun `gen sample` so the leak guard can read real_counts") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg}); rerun `gen sample`") from None


def count_samples(samples_dir: str, minority: str, exclude: str | None = None) -> tuple[int, int]:
    """(all, accepted) rows of the minority class in samples.csv, less those an exclude list names."""
    listed = read_exclude_list(exclude) if exclude else None
    with open(Path(samples_dir) / "samples.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh)
                if r.get("class") == minority and not (listed and listed.matches(r))]
    accepted = sum(1 for r in rows if str(r.get("accepted", "")).strip() in ("1", "true", "True"))
    return len(rows), accepted


def check_enough_samples(samples_dir: str, minority: str, need_all: int, need_accepted: int,
                         exclude: str | None = None) -> None:
    """Fail before training, not in the middle of a grid, when the set is too small for a ratio
    (counting without the samples --synthetic-exclude rules out)."""
    n_all, n_accepted = count_samples(samples_dir, minority, exclude)
    if need_all > n_all or need_accepted > n_accepted:
        raise UserError(f"{samples_dir} has {n_all} {minority!r} samples ({n_accepted} accepted) "
                        f"but the largest synthetic ratio needs {need_all} (gan) / "
                        f"{need_accepted} (gan_filtered); "
                        "sample more with `gen sample` or lower --synthetic-ratio")


def check_sample_set(
    samples_dir: str, *, minority: str, res: int, allowed: int, facts: DataFacts, allow_leak: bool
) -> SampleCheck:
    """Refuse sample sets for another class, a lower resolution, or (by default) a leaky generator."""
    info = read_sample_info(samples_dir)
    classes = [str(c) for c in info.get("classes", [])]
    if minority not in classes:
        raise UserError(f"{samples_dir}/sample_info.json is for classes {classes}, not the minority class "
                        f"{minority!r}; sample that class with `gen sample`")
    sample_res = int(info.get("res", 0))
    if sample_res < res:
        raise UserError(f"{samples_dir} holds {sample_res}px samples but the ablation trains at {res}px; "
                        "upsampled fakes are trivially blurrier than reals — sample at >= the ablation --res")
    counts = info.get("real_counts")
    if not isinstance(counts, dict) or minority not in counts:
        raise UserError(f"{samples_dir}/sample_info.json has no real_counts[{minority!r}]; "
                        "rerun `gen sample` with a generator that records them")
    seen = int(counts[minority])
    outside = _check_seen_images(info.get("seen_md5"), facts, samples_dir, minority)
    leak = seen > allowed or outside > 0
    if leak and not allow_leak:
        why = (f"{outside} of them are not train images of this data" if outside else
               f"this cell may see only {allowed}")
        raise UserError(f"{samples_dir}: its generator saw {seen} real {minority!r} images but {why}; "
                        "train a GAN on the reduced set, or pass --allow-generator-leak "
                        "(flagged in the report)")
    warnings: list[str] = []
    if leak:
        warnings.append(f"generator saw {seen} real minority images "
                        f"({outside} outside this data's train split), "
                        f"cell allows {allowed} (--allow-generator-leak)")
    if (info.get("seen_md5") is None
            and str(info.get("manifest_hash", facts.manifest_hash)) != facts.manifest_hash):
        # Not refused: the user may have prepared a reduced copy of the data for the GAN. But we
        # cannot prove that copy's train split excludes this folder's val/test images.
        warnings.append("sample set was generated from a different data manifest; cannot verify that its "
                        "generator never saw this folder's val/test images")
    return SampleCheck(samples_dir=str(samples_dir), generator_real_minority=seen,
                       allowed_real_minority=allowed, leak=leak, warnings=warnings)


def _check_seen_images(seen_md5: dict | None, facts: DataFacts, samples_dir: str, minority: str) -> int:
    """Refuse a generator that saw any val/test image of this data (of any class); return how many
    minority images it saw outside this data's train split. 0 when the generator recorded no md5s."""
    if not isinstance(seen_md5, dict) or not facts.train_md5:
        return 0
    for name, hashes in seen_md5.items():
        held = sorted(set(hashes) & facts.heldout_md5)
        if held:
            raise UserError(f"{samples_dir}: its generator saw {len(held)} {name!r} image(s) "
                            f"that are val/test images of this data (md5 {held[0][:12]}...); "
                            "the comparison would be measured on images the GAN learned from — "
                            "train the GAN on this data's train split only")
    return len(set(seen_md5.get(minority, [])) - facts.train_md5.get(minority, frozenset()))
