"""`gen merge-samples A B ... --out C`: one sample folder from several generators, one per class.

Symmetric synthesis (`classify train --synthetic-classes all`) draws every class's synthetic
images from one folder. A conditional generator makes such a folder by itself (`gen sample
--class all`); with one generator per class (the minority or transfer recipe run once per class)
each class has its own folder, and this merges them: the PNGs are copied (never moved: the
inputs stay as they were), samples.csv holds every row, and sample_info.json unites what the
ablation's leak guard reads (classes, real counts and the md5 of every image each generator
saw). The folders must come from the same prepared data at the same resolution and sample
different classes, so that no file or seed is claimed twice.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_bytes, atomic_write_csv, atomic_write_json
from classify.core.runlock import folder_lock

SAME = ("res", "channels", "manifest_hash", "fit", "trunc", "resize_to")


def _read(folder: Path) -> tuple[list[str], list[dict[str, str]], dict[str, Any], dict[str, Any]]:
    table, info_path = folder / "samples.csv", folder / "sample_info.json"
    if not table.is_file() or not info_path.is_file():
        raise UserError(f"{folder} is not a finished `gen sample` folder "
                        "(no samples.csv or sample_info.json)")
    with open(table, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    report_path = folder / "filter_report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    return header, rows, json.loads(info_path.read_text(encoding="utf-8")), report


def _check(folders: list[Path], infos: list[dict], rows: list[list[dict]]) -> None:
    for key in SAME:
        values = {json.dumps(i.get(key)) for i in infos}
        if len(values) > 1:
            raise UserError(f"the sample folders differ in {key} ({', '.join(sorted(values))}); "
                            "merge only folders sampled from generators of the same data and resolution")
    owner: dict[str, Path] = {}
    for folder, table in zip(folders, rows):
        for cls in sorted({r["class"] for r in table}):
            if cls in owner:
                raise UserError(f"class {cls!r} is sampled in both {owner[cls]} and {folder}; "
                                "give each class one folder (one generator per class)")
            owner[cls] = folder


def _union_info(folders: list[Path], infos: list[dict], tables: list[list[dict]], n: int) -> dict[str, Any]:
    """One sample_info: each sampled class's real count and seen md5s from the folder that sampled
    it (its generator: what the leak guard must judge); a class only seen, not sampled, keeps the
    most any generator saw of it (counts: the largest; md5s: the union)."""
    merged: dict[str, Any] = {key: infos[0].get(key) for key in (*SAME, "data_dir")}
    merged.update({"classes": [], "real_counts": {}, "seen_md5": {}, "sources": [str(f) for f in folders],
                   "recipe": "merged: " + ", ".join(str(i.get("recipe")) for i in infos), "n": n,
                   "status": "done"})
    sampled = {r["class"]: info for info, table in zip(infos, tables) for r in table}
    for info in infos:
        merged["classes"] += [c for c in info.get("classes", []) if c not in merged["classes"]]
        for cls, count in (info.get("real_counts") or {}).items():
            merged["real_counts"][cls] = max(int(count), merged["real_counts"].get(cls, 0))
        for cls, md5s in (info.get("seen_md5") or {}).items():
            merged["seen_md5"][cls] = sorted(set(merged["seen_md5"].get(cls, [])) | set(md5s))
    for cls, info in sampled.items():
        if cls in (info.get("real_counts") or {}):
            merged["real_counts"][cls] = int(info["real_counts"][cls])
        if cls in (info.get("seen_md5") or {}):
            merged["seen_md5"][cls] = sorted(info["seen_md5"][cls])
    return merged


def _inside(base: Path, relative: str) -> Path:
    """base / relative, refused when a samples.csv path would leave the folder."""
    path = (base / relative).resolve()
    if base.resolve() not in path.parents:
        raise UserError(f"samples.csv names {relative!r}, which lies outside {base}; "
                        "refusing to read or write it")
    return path


def merge_sample_folders(folders: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Copy the samples of `folders` into `out` (one writer at a time); returns the merged sample_info."""
    folders = [Path(f) for f in folders]
    out = Path(out)
    if len(folders) < 2:
        raise UserError("name at least two sample folders to merge")
    if (out.resolve() in {f.resolve() for f in folders}
            or any(f.resolve() in out.resolve().parents for f in folders)):
        raise UserError(f"--out {out} is one of the inputs or lies inside one; "
                        "write the merged set to a new folder")
    with folder_lock(out, "gen merge-samples"):
        return _merge(folders, out)


def _merge(folders: list[Path], out: Path) -> dict[str, Any]:
    if (out / "samples.csv").exists():
        raise UserError(f"{out} already holds a sample set; choose an empty --out")
    read = [_read(f) for f in folders]
    unfinished = [str(f) for f, r in zip(folders, read) if r[2].get("status") not in (None, "done")]
    if unfinished:
        raise UserError(f"{', '.join(unfinished)} is still being written "
                        "(sample_info.json status is not 'done'); merge once `gen sample` has finished")
    _check(folders, [r[2] for r in read], [r[1] for r in read])
    header: list[str] = []
    table: list[dict[str, str]] = []
    copies: list[tuple[Path, Path]] = []  # every path checked before the first byte is written
    for folder, (cols, rows, _info, _report) in zip(folders, read):
        header += [c for c in cols if c not in header]
        for row in rows:
            copies += [(_inside(folder, row[key]), _inside(out, row[key])) for key in ("file", "native_file")
                       if row.get(key)]
            table.append(row)
    for src, dest in copies:
        atomic_write_bytes(dest, src.read_bytes())
    atomic_write_csv(out / "samples.csv", header, ([row.get(c, "") for c in header] for row in table))
    info = _union_info(folders, [r[2] for r in read], [r[1] for r in read], len(table))
    atomic_write_json(out / "sample_info.json", info)
    reports = [r[3] for r in read]
    atomic_write_json(out / "filter_report.json", {
        "merged_from": info["sources"], "n_samples": len(table),
        "per_class": {k: v for rep in reports for k, v in (rep.get("per_class") or {}).items()},
        "domain_gap": {"note": next((rep["domain_gap"].get("note") for rep in reports
                                     if rep.get("domain_gap")), ""),
                       "per_class": {k: v for rep in reports for k, v in
                                     ((rep.get("domain_gap") or {}).get("per_class") or {}).items()}}})
    return info
