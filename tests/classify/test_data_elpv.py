"""The built-in ELPV source end to end (needs the elpv-dataset package; ~30 s on 2 CPU cores)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from classify.cli import main
from classify.data.dataset import open_prepared

pytestmark = pytest.mark.elpv


@pytest.mark.slow  # decodes all 2,624 ELPV images (~20 s on 2 cores)
def test_prepare_elpv(tmp_path, monkeypatch):
    utils = pytest.importorskip("elpv_dataset.utils")
    loaded = []
    real_loader = utils.load_dataset

    def remembering_loader(*args, **kwargs):  # the real data, decoded once for prepare and the checks
        loaded.append(real_loader(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(utils, "load_dataset", remembering_loader)
    out = tmp_path / "elpv"
    result = CliRunner().invoke(main, ["prepare", "elpv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    (images, probs, types), = loaded
    n_dup_rows = sum(1 for r in rows if r["dup_group"])
    n_groups = len({r["dup_group"] for r in rows if r["dup_group"]})
    # Every cell is one row; duplicates (none in elpv-dataset 1.x) would collapse to groups, not vanish.
    assert len(rows) == len(images) == 2624
    assert len(rows) - n_dup_rows + n_groups == len({r["md5"] for r in rows})
    labels = [r["label"] for r in rows]
    assert labels.count("defective") == int((probs >= 0.5).sum()) == 821
    assert labels.count("functional") == 1803
    # Rows keep the source order and extras; the exported PNG holds exactly the source pixels.
    for i in (0, 1234, 2623):
        assert rows[i]["source_index"] == str(i) and rows[i]["elpv_type"] == types[i]
        assert np.array_equal(np.asarray(Image.open(out / rows[i]["path"])), images[i])
    data = open_prepared(out)
    assert data.channels == 1 and data.classes == ["defective", "functional"]
    test_defective = data.select(split="test", classes=["defective"])
    assert len(test_defective) == round(0.2 * 821)
    x = test_defective.images(res=32)
    assert x.shape == (164, 1, 32, 32)
