"""The ablation report's PCA + t-SNE feature maps, heatmaps and outlier table."""

import numpy as np
from classify_helpers import make_samples_folder
from gen_helpers import tiny_judge
from PIL import Image

from classify.ablate import plots
from classify.ablate.feature_map import explanation_blocks, feature_groups, feature_map_blocks
from classify.core import reportdoc as doc


def _points(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(size=(30, 12)), rng.normal(size=(20, 12)) + 3])


def test_tsne_is_deterministic_for_a_seed():
    x = _points()
    a, b = plots.tsne_projection(x, seed=0), plots.tsne_projection(x, seed=0)
    assert a.shape == (50, 2) and np.array_equal(a, b)
    # the two planted clusters stay apart in the map: neighbourhoods survive
    centre = lambda part: part.mean(axis=0)  # noqa: E731
    spread = max(np.linalg.norm(a[:30] - centre(a[:30]), axis=1).mean(), 1e-9)
    assert np.linalg.norm(centre(a[:30]) - centre(a[30:])) > 2 * spread


def test_feature_maps_draw_pca_and_tsne_with_the_perplexity_used():
    x = _points()
    png, perplexity = plots.feature_maps({"real train (bad)": x[:30], "synthetic accepted (bad)": x[30:],
                                          "empty": np.zeros((0, 12))}, "title", seed=0)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and perplexity == 16.0 and perplexity < 50
    again, _ = plots.feature_maps({"real train (bad)": x[:30], "synthetic accepted (bad)": x[30:]}, "title",
                                  seed=0)
    assert again == png  # same points, same seed: the same picture
    assert plots.tsne_perplexity(1000) == 30.0 and plots.tsne_perplexity(7) == 2.0
    few, none = plots.feature_maps({"one": x[:3]}, "few points", seed=0)
    assert few[:8] == b"\x89PNG\r\n\x1a\n" and none is None


def _records(tiny_prepared, tmp_path):
    judge = tiny_judge(tmp_path / "cell.pt", ["bad", "good"], res=32)
    samples = make_samples_folder(tmp_path / "samples", n_accepted=6, n_rejected=4, size=16)
    return [{"id": "baseline__resnet18__frac1__seed0", "arm": "baseline",
             "cell": {"strategy": "baseline", "minority_fraction": 1.0, "seed": 0, "model": "resnet18"},
             "train": {"checkpoint": str(judge)}, "sample_check": {"samples_dir": str(samples)},
             "train_config": {"minority_class": "bad", "data_dir": str(tiny_prepared), "res": 32}}], samples


def test_groups_hold_real_train_and_test_of_every_class_and_both_sample_kinds(tiny_prepared, tmp_path):
    records, samples = _records(tiny_prepared, tmp_path)
    groups = feature_groups(records[0], str(samples))
    assert {k: len(v) for k, v in groups.items()} == {
        "real train (bad)": 5, "real test (bad)": 2, "real train (good)": 15, "real test (good)": 5,
        "synthetic accepted (bad)": 6, "synthetic rejected (bad)": 4}


def test_report_blocks_show_both_maps_heatmaps_and_the_outlier_table(tiny_prepared, tmp_path):
    records, _ = _records(tiny_prepared, tmp_path)
    out = tmp_path / "report"
    blocks = feature_map_blocks(records, out) + explanation_blocks(records, out)
    images = [b for b in blocks if isinstance(b, doc.Image)]
    assert [b.path for b in images] == ["plots/feature_map.png", "plots/explain/explain_test.png",
                                        "plots/explain/explain_samples.png", "plots/outliers/outliers.png"]
    assert "perplexity 12, seed 0" in images[0].caption and "t-SNE" in images[0].caption
    for b in images:
        assert Image.open(out / b.path).format == "PNG"
    (table,) = [b for b in blocks if isinstance(b, doc.Table)]
    assert [r[0] for r in table.rows] == ["bad"] * 5 + ["good"] * 5 and (
        [r[1] for r in table.rows[:5]] == list("12345"))
    assert (out / "plots" / "outliers" / "outliers.csv").is_file()
