"""`gen sample` and generator files under bad input: one-line errors, nothing silently black.

--trunc nan made all-black images that every filter accepted and wrote NaN into
sample_info.json; an all-NaN generator did the same; seeds past 2^64 overflowed a torch
generator; --out could point into a prepared data folder; damaged .safetensors metadata was
a traceback.
"""

from __future__ import annotations

import json
import struct

import pytest
import torch
from click.testing import CliRunner
from gen_helpers import prepared_bad_good, tiny_generator
from helpers import one_line_error
from safetensors.torch import load_file, save_file

from classify.core.errors import UserError
from gen.cli import main
from gen.core.generator_file import load_generator, read_generator_metadata
from gen.sample.filters import FilterConfig
from gen.sample.runner import SampleConfig, run_sample
from gen.sample.sampling import MAX_SEED, generate, parse_seeds


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("samplehard")
    data = prepared_bad_good(root)
    run = tiny_generator(root / "run", data, ["bad"])
    export = next(run.glob("*.safetensors"))
    nan_run = root / "nan"
    nan_run.mkdir()
    with open(export, "rb") as fh:
        header_len = struct.unpack("<Q", fh.read(8))[0]
        metadata = json.loads(fh.read(header_len))["__metadata__"]
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
             for k, v in load_file(export).items()}
    save_file(state, nan_run / export.name, metadata=metadata)
    return {"data": data, "run": run, "nan": nan_run / export.name, "export": export}


@pytest.mark.parametrize("trunc", ["nan", "inf", "-inf"])
def test_non_finite_trunc_is_refused_before_any_image(files, tmp_path, trunc):
    out = tmp_path / "s"
    r = CliRunner().invoke(main, ["sample", str(files["run"]), "--out", str(out), "--n", "2",
                                  "--filters", "none", "--trunc", trunc])
    one_line_error(r, f"--trunc {trunc}", "finite", after_output=True)
    assert not (out / "sample_info.json").exists() and not list(out.rglob("*.png"))


def test_generator_that_makes_nan_pixels_is_refused(files):
    G, _ = load_generator(files["run"])
    with torch.no_grad():
        for p in G.synthesis.parameters():
            p.fill_(float("nan"))
    with pytest.raises(UserError, match=r"NaN/inf pixels for 2 of 2 seeds \(first: 0\)"):
        generate(G, [0, 1], [0, 0])


def test_generator_file_with_nan_weights_is_refused(files, tmp_path):
    with pytest.raises(UserError, match="holds NaN or infinite weights"):
        load_generator(files["nan"])
    r = CliRunner().invoke(main, ["sample", str(files["nan"]), "--out", str(tmp_path / "s"), "--n", "2",
                                  "--filters", "none"])
    one_line_error(r, "NaN or infinite weights", after_output=True)
    assert not list((tmp_path / "s").rglob("*.png"))


@pytest.mark.parametrize("seeds", ["99999999999999999999", "0-99999999999999999999", f"{MAX_SEED + 1}"])
def test_huge_seeds_are_one_line(files, tmp_path, seeds):
    r = CliRunner().invoke(main, ["sample", str(files["run"]), "--out", str(tmp_path / "s"), "--seeds", seeds,
                                  "--filters", "none"])
    one_line_error(r, "larger than 4294967295", after_output=True)


def test_largest_seed_still_works(files):
    assert parse_seeds(f"{MAX_SEED - 1}-{MAX_SEED}", None) == [MAX_SEED - 1, MAX_SEED]
    G, _ = load_generator(files["run"])
    assert generate(G, [MAX_SEED], [0]).shape[0] == 1


@pytest.mark.parametrize("inside", [".", "samples", "cache/deeper"])
def test_out_inside_a_prepared_data_folder_is_refused(files, inside):
    out = files["data"] / inside
    with pytest.raises(UserError, match=r"lies in the prepared data folder .* has a manifest.csv"):
        run_sample(SampleConfig(generator=str(files["run"]), out_dir=str(out), n=2,
                                filters=FilterConfig(filters=[])), log=lambda m: None)
    assert not (files["data"] / "samples").exists() and not (files["data"] / "sample_info.json").exists()


def test_sample_info_stays_valid_json(files, tmp_path):
    out = tmp_path / "s"
    run_sample(SampleConfig(generator=str(files["run"]), out_dir=str(out), n=2, trunc=0.7,
                            filters=FilterConfig(filters=[])), log=lambda m: None)
    text = (out / "sample_info.json").read_text()
    assert "NaN" not in text and json.loads(text)["trunc"] == 0.7


# ---- damaged generator files ---------------------------------------------------------------------

def test_damaged_metadata_is_one_line(files, tmp_path):
    state = load_file(files["export"])
    bad = tmp_path / "bad.safetensors"
    save_file(state, bad, metadata={"format": "ganbalance-generator", "config": "{not json", "info": "{}"})
    with pytest.raises(UserError, match=r"damaged generator metadata \(JSONDecodeError"):
        read_generator_metadata(bad)


@pytest.mark.parametrize("damage", ["truncated", "huge_header", "bad_config"])
def test_resume_from_a_damaged_safetensors_is_one_line(files, tmp_path, damage):
    from gen_helpers import tiny_cfg

    from gen.train.trainer import train_gan

    blob = files["export"].read_bytes()
    bad = tmp_path / "g.safetensors"
    if damage == "truncated":
        bad.write_bytes(blob[: len(blob) // 2])
    elif damage == "huge_header":
        bad.write_bytes(struct.pack("<Q", 2**62) + blob[8:])
    else:
        save_file(load_file(files["export"]), bad, metadata={"config": "[1, 2", "info": "{}"})
    with pytest.raises(UserError, match=str(bad)) as exc:
        train_gan(tiny_cfg(files["data"], tmp_path / "r", resume_from=str(bad)), log=lambda m: None)
    assert "\n" not in str(exc.value)
