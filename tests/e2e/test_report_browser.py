"""OUT/index.html in headless Chromium: every image decodes, every link resolves, it renders.

The run folder is hand-made with the file names the commands write (the end-to-end smoke
test renders a real one). A negative control proves the checks can fail.
"""

import json
from pathlib import Path

import numpy as np
import torch
from helpers import broken_links, chromium_or_skip, probe_images, screenshot
from PIL import Image

from gen.core.grids import save_grid
from gen.pipeline.site import write_site_index


def _grid(path: Path, shade: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(shade)
    save_grid(torch.randint(shade - 40, shade + 40, (8, 1, 16, 16), generator=g).to(torch.uint8), path,
              nrow=4)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_run(out: Path) -> Path:
    """A run folder holding what prepare, train/eval, gen train, gen sample and ablate write."""
    _write(out / "data" / "report.md",
           "# Prepared dataset report\n\n| class | train |\n|---|---|\n| bad | 5 |\n")
    _write(out / "data" / "manifest.csv", "path,label,split\n")
    _write(out / "judge" / "eval_val.json", json.dumps({"n": 6, "roc_auc": 0.9, "average_precision": 0.8}))
    _write(out / "judge" / "metrics.json", json.dumps({"val": {"n": 6}}))
    for name in ("confusion_val.png", "pr_val.png", "roc_val.png"):
        _grid(out / "judge" / name, 120)
    rows = [{"kimg": k, "fd_judge": 50.0 / (k + 1), "kd_judge": 1.0, "ada_p": 0.05 * k} for k in range(4)]
    _write(out / "gan" / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    _write(out / "gan" / "best.json", json.dumps({"snapshot": "network-snapshot-000003.pt",
                                                  "metric": "fd_judge", "value": 12.5, "kimg": 3}))
    for name in ("reals.png", "fakes_init.png", "fakes000002.png", "fakes000003.png"):
        _grid(out / "gan" / name, 100)
    for name in ("accepted.png", "rejected.png", "nearest_real.png"):
        _grid(out / "samples" / name, 140)
    _write(out / "samples" / "index.html",
           "<html><body><img src='accepted.png'><a href='samples.csv'>csv</a></body></html>")
    _write(out / "samples" / "samples.csv", "file,seed,accepted\n")
    _write(out / "samples" / "filter_report.json", json.dumps({
        "n_samples": 8, "n_accepted": 3, "rejected_by": {"judge": 5},
        "per_class": {"bad": {"all_vs_real": {"n": 8, "fd_judge": 9.0, "kd_judge": 0.5},
                              "accepted_vs_real": {"n": 3, "fd_judge": 7.0, "kd_judge": 0.4}}}}))
    _write(out / "explain" / "explain.json", json.dumps({
        "model_name": "resnet18", "res": 32, "layer": "layer2", "map_size": "4x4",
        "layer_rule": "the last stage", "ensemble_note": None, "sources": {
            "val": {"title": "val split", "png": "explain_val.png",
                    "groups": {"true positives": {"n": 9, "shown": 8}}},
            "samples": {"title": "samples", "png": "explain_samples.png",
                        "groups": {"accepted": {"n": 5, "shown": 5}}},
            "gone": {"title": "a grid that was deleted", "png": "explain_gone.png", "groups": {}}}}))
    _write(out / "explain" / "explain.csv", "source,group,rank,file\n")
    for name in ("explain_val.png", "explain_samples.png"):
        _grid(out / "explain" / name, 150)
    _write(out / "outliers" / "outliers.json", json.dumps({"split": "train", "top": {"bad": [
        {"file": "elpv_images/zz_blank.png", "class": "bad", "rank": 1, "iforest_score": 0.7,
         "ocsvm_score": 2.2, "p_class": 0.1, "predicted": "good"}]}}))
    _write(out / "outliers" / "outliers.csv",
           "file,class,split,iforest_score,ocsvm_score,rank,p_class,predicted\n")
    _grid(out / "outliers" / "outliers.png", 170)
    _grid(out / "ablate" / "plots" / "feature_map.png", 80)
    _grid(out / "ablate" / "plots" / "bar_average_precision.png", 60)
    _write(out / "ablate" / "report.html",
           "<html><body><h1>Ablation</h1><a href='report.md'>md</a></body></html>")
    _write(out / "ablate" / "report.md",
           "# Ablation report\n\n## Answer\n\n- gan_filtered vs baseline: no detectable difference\n")
    _write(out / "ablate" / "results.json", json.dumps([
        {"model": "resnet18", "minority_fraction": 1, "arm": a, "average_precision": ap, "minority_f1": 0.5}
        for a, ap in [("baseline", 0.7), ("baseline", 0.72), ("gan_filtered@1", 0.75)]]))
    return write_site_index(out, {"prepare": 3.0, "judge": 60.0})


def test_index_renders_with_no_broken_images_or_links(tmp_path):
    chromium_or_skip()
    index = make_run(tmp_path / "run")
    page = index.read_text()
    for expected in ("data/report.md", "judge/confusion_val.png", "gan/training_curves.png",
                     "gan/fakes000003.png", "samples/index.html", "samples/accepted.png",
                     "ablate/report.html", "ablate/plots/bar_average_precision.png",
                     "no detectable difference", "0.710 ± 0.014", "explain/explain_val.png",
                     "explain/explain_samples.png",
                     "explain/explain.csv", "outliers/outliers.png", "outliers/outliers.csv", "zz_blank.png",
                     "ablate/plots/feature_map.png", "PCA (left) and t-SNE (right)", "layer layer2 (4x4 map"):
        assert expected in page, expected
    assert "not run yet" not in page and "fakes000002.png" not in page  # only the latest fakes grid
    assert "explain_gone.png" not in page  # a grid named in explain.json but missing is left out, not linked
    assert broken_links(index, tmp_path / "run") == []
    probe = probe_images(index, tmp_path)
    assert probe["broken"] == 0, probe["broken_src"]
    # judge 3, gan 4 (curves, reals, init, latest), samples 3, explain 2, outliers 1, ablate 2 (bar,
    # feature map)
    assert probe["images"] == 15
    shot = screenshot(index, tmp_path / "index.png", tmp_path)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2400, 1200)
    # Rendered text is near-black and the grids are mid-grey: a blank or error page has neither.
    assert (pixels < 60).mean() > 0.001 and ((pixels > 40) & (pixels < 180)).mean() > 0.01


def test_checks_catch_a_missing_file_and_an_undecodable_image(tmp_path):
    chromium_or_skip()
    run = tmp_path / "run"
    index = make_run(run)
    (run / "samples" / "accepted.png").unlink()  # missing: both checks see it
    (run / "gan" / "reals.png").write_bytes(b"not a png")  # exists: only the browser sees it
    bad = broken_links(index, run)
    assert any("samples/accepted.png" in b for b in bad) and not any("reals.png" in b for b in bad)
    probe = probe_images(index, tmp_path)
    assert sorted(probe["broken_src"]) == ["gan/reals.png", "samples/accepted.png"]


def test_links_must_be_relative_and_inside_the_run(tmp_path):
    page = tmp_path / "run" / "p.html"
    _write(page, "<a href='/etc/passwd'>x</a><a href='http://example.com/a.png'>y</a>"
                 "<img src='../outside.png'><a href='#top'>ok</a><img src='data:image/png;base64,AA=='>")
    (tmp_path / "outside.png").write_bytes(b"x")
    bad = broken_links(page, tmp_path / "run")
    assert len(bad) == 3 and all("p.html" in b for b in bad)


def test_training_curves_plot_distances_not_their_std_or_subset():
    from gen.pipeline.curves import _metric_keys

    rows = [{"kimg": 0, "fd_judge": 9.0, "kd_judge": 0.1, "kd_judge_std": 0.2, "kd_judge_subset": 8,
             "ada_p": 0.0}]
    assert _metric_keys(rows, ("kd", "kid")) == ["kd_judge"] and (
        _metric_keys(rows, ("fd", "fid")) == ["fd_judge"])
