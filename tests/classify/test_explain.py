"""`classify explain`: Grad-CAM where the decision is made, the layer rule, outputs and bad input."""

import csv
import json

import numpy as np
import pytest
import torch
from classify_helpers import make_samples_folder
from click.testing import CliRunner
from gen_helpers import tiny_judge
from helpers import one_line_error
from PIL import Image
from torch import nn

from classify.cli import main
from classify.core.errors import UserError
from classify.evaluate.cam import cam_maps, explained_net, pick_layer
from classify.evaluate.explain import ExplainConfig, run_explain
from classify.model.checkpoint import save_checkpoint
from classify.model.ensemble import FORMAT_VERSION, KIND
from classify.model.heads import fit_head
from classify.model.inference import normalise
from classify.model.loading import load_classifier, read_checkpoint
from classify.model.models import ClassifierNet, build_model, list_models

RES = 32


class QuadrantMean(nn.Module):
    """[N, C, H, W] -> [N, C]: the mean of each channel over the top-right quadrant only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return x[:, :, : h // 2, w // 2 :].mean(dim=(2, 3))


def quadrant_model() -> ClassifierNet:
    """A tiny CNN whose decision depends on the top-right quadrant: channel 0 finds bright
    pixels, channel 1 dark ones; class 1's logit is the bright response in that quadrant."""
    conv = nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0] = 1.0 / 9
        conv.weight[1] = -1.0 / 9
        conv.bias.copy_(torch.tensor([-0.5, -0.5]))
    backbone = nn.Sequential(conv, nn.ReLU(), QuadrantMean())
    net = ClassifierNet(backbone, 2, 2, stem_key="0.weight")
    with torch.no_grad():
        net.head.weight.copy_(torch.tensor([[-4.0, 0.0], [4.0, 0.0]]))
        net.head.bias.zero_()
    return net.eval()


def quadrant_images(n: int, seed: int = 0) -> torch.Tensor:
    """Normalised [-1, 1] images: a bright square somewhere in the top-right quadrant, dark
    squares (which the model ignores) in the other three, on a noisy grey background."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, RES, RES, generator=g) * 0.4 - 0.2
    for i in range(n):
        top, left = torch.randint(0, RES // 2 - 6, (2,), generator=g).tolist()
        x[i, 0, top:top + 6, RES // 2 + left:RES // 2 + left + 6] = 1.0
        for oy, ox in ((0, 0), (RES // 2, 0), (RES // 2, RES // 2)):
            t, le = torch.randint(0, RES // 2 - 6, (2,), generator=g).tolist()
            x[i, 0, oy + t:oy + t + 6, ox + le:ox + le + 6] = -1.0
    return x


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_heat_lands_in_the_quadrant_the_decision_depends_on(method):
    net = quadrant_model()
    x = quadrant_images(6)
    assert (net(x).argmax(1) == 1).all()  # the model calls all of them class 1
    choice = pick_layer(net.backbone, RES, 1, "quadrant")
    assert choice.name == "1" and choice.shape == (1, 2, RES, RES)  # the ReLU: the last feature map
    heat = cam_maps(net, choice.module, x, [1] * len(x), method)
    assert heat.shape == (6, RES, RES) and heat.min() >= 0
    share = heat[:, : RES // 2, RES // 2 :].sum(axis=(1, 2)) / heat.sum(axis=(1, 2))
    assert (share > 0.8).all(), share  # an even spread would be 0.25, a transposed map ~0
    # The dark squares elsewhere are the model's strongest other response: they get no heat.
    others = heat[:, RES // 2 :, :].reshape(6, -1).max(axis=1)
    assert (others < 0.2).all(), others


def test_the_layer_rule_for_registry_models_and_timm():
    expected = {("resnet18", 32): "layer2", ("resnet18", 128): "layer4", ("vgg11_bn", 128): "features",
                ("densenet121", 64): "features.denseblock3", ("efficientnet_b0", 128): "bn2",
                ("timm:regnetx_002", 64): "s3", ("timm:convnext_nano", 32): "stages.1"}
    for (name, res), layer in expected.items():
        choice = pick_layer(build_model(name, 2, 1).backbone, res, 1, name)
        assert choice.name == layer and min(choice.shape[-2:]) >= 4, (name, res, choice)
    over = pick_layer(build_model("resnet18", 2, 1).backbone, 32, 1, "resnet18", layer="backbone.layer3")
    assert over.name == "layer3" and over.rule == "--layer" and over.shape[-1] == 2


@pytest.mark.parametrize("name", [*list_models(), "timm:regnetx_002", "timm:convnext_nano"])
def test_heatmaps_come_out_of_every_registry_model_and_timm(name):
    torch.manual_seed(0)
    net = build_model(name, 2, 3).eval()
    choice = pick_layer(net.backbone, RES, 3, name)
    x = torch.randn(2, 3, RES, RES)
    for method in ("gradcam", "gradcam++"):
        heat = cam_maps(net, choice.module, x, [0, 1], method)
        assert heat.shape == (2, RES, RES) and np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1


@pytest.mark.parametrize("kind", ["logreg", "svm"])
def test_a_decoupled_head_is_what_the_heatmaps_explain(kind, tmp_path):
    torch.manual_seed(0)
    net = build_model("resnet18", 2, 1).eval()
    x = torch.randint(0, 256, (12, 1, RES, RES), dtype=torch.uint8)
    norm = {"mean": [0.5], "std": [0.25]}
    with torch.no_grad():
        feats = net.features(normalise(x.float() / 255, norm))
    head = fit_head(kind, feats, torch.tensor([0, 1] * 6))
    save_checkpoint(tmp_path / "m.pt", model=net, model_name="resnet18", config={}, classes=["bad", "good"],
                    positive=0, in_chans=1, res=RES, fit="crop", threshold=0.5, norm=norm, epoch=0, val={},
                    head=head)
    clf = load_classifier(tmp_path / "m.pt")
    with torch.no_grad():
        probs = torch.softmax(explained_net(clf)(normalise(x.float() / 255, norm)), dim=1)
    assert torch.allclose(probs, clf.predict_proba(x), atol=1e-5)
    assert not torch.allclose(probs, torch.softmax(clf.model(normalise(x.float() / 255, norm)), dim=1),
                              atol=1e-3)


def test_models_without_a_convolutional_stage_and_bad_layers_are_refused():
    mlp = ClassifierNet(nn.Sequential(nn.Flatten(), nn.Linear(RES * RES, 8)), 8, 2, stem_key="1.weight")
    with pytest.raises(UserError, match="has no convolutional stage"):
        pick_layer(mlp.backbone, RES, 1, "mlp")

    class Tokens(nn.Module):  # a patch embedding followed by token layers, like a vision transformer
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(1, 8, 8, stride=8)
            self.mix = nn.Linear(8, 8)

        def forward(self, x):
            return self.mix(self.patch(x).flatten(2).transpose(1, 2)).mean(1)

    with pytest.raises(UserError, match="token sequences"):
        pick_layer(Tokens(), RES, 1, "vit-like")
    backbone = build_model("resnet18", 2, 1).backbone
    with pytest.raises(UserError,
                       match="'layer9' is not a layer of resnet18; feature-map layers include .*layer2"):
        pick_layer(backbone, RES, 1, "resnet18", layer="layer9")
    with pytest.raises(UserError,
                       match="'global_pool' of resnet18 gives \\[1, 512\\] at 32px, not a feature map"):
        pick_layer(backbone, RES, 1, "resnet18", layer="global_pool")


@pytest.fixture
def judge(tmp_path):
    return tiny_judge(tmp_path / "judge.pt", ["bad", "good"], res=RES)


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_explain_writes_grids_table_and_summary_for_data_and_samples(tiny_prepared, judge, tmp_path):
    samples = make_samples_folder(tmp_path / "samples", n_accepted=5, n_rejected=3, size=16)
    out = tmp_path / "explain"
    s = run_explain(ExplainConfig(model_path=str(judge), out_dir=str(out), data_dir=str(tiny_prepared),
                                  split="test", images=str(samples), per_group=4), log=lambda _m: None)
    assert s["layer"] == "layer2" and s["map_size"] == "4x4" and s["ensemble_note"] is None
    assert set(s["sources"]) == {"test", "samples"}
    for src in s["sources"].values():
        png = Image.open(out / src["png"])
        assert png.format == "PNG" and png.size[0] > 300
    test = s["sources"]["test"]["groups"]
    # 2 bad and 5 good test images: every bad one is a TP or an FN, the FPs are good ones
    assert test["true positives"]["n"] + test["false negatives"]["n"] == 2 and (
        test["false positives"]["n"] <= 5)
    assert s["sources"]["samples"]["groups"] == {
        "accepted": {"n": 5, "shown": 4, "picked": "spread over the judge scores, highest first"},
        "rejected": {"n": 3, "shown": 3, "picked": "spread over the judge scores, highest first"}}
    rows = _csv(out / "explain.csv")
    assert len(rows) == sum(g["shown"] for src in s["sources"].values() for g in src["groups"].values())
    tp = [r for r in rows if r["group"] == "true positives"]
    assert all(r["class"] == "bad" and r["target_class"] == "bad" for r in tp)
    assert [float(r["score"]) for r in tp] == sorted((float(r["score"]) for r in tp), reverse=True)
    rejected = [r for r in rows if r["group"] == "rejected"]
    assert rejected and all(r["note"] == "judge_confidence" for r in rejected)
    assert all(0 < float(r["peak_y"]) < 1 and 0 < float(r["peak_x"]) < 1 for r in rows)
    assert json.loads((out / "explain.json").read_text())["layer_rule"].startswith("the last stage")


def test_rgb_data_and_models_explain_too(tiny_prepared_rgb, tmp_path):
    judge = tiny_judge(tmp_path / "rgb.pt", ["bad", "good"], in_chans=3, res=RES)
    s = run_explain(ExplainConfig(model_path=str(judge), out_dir=str(tmp_path / "e"),
                                  data_dir=str(tiny_prepared_rgb), split="val", per_group=2),
                    log=lambda _m: None)
    assert s["sources"]["val"]["n"] == 5 and (
        Image.open(tmp_path / "e" / "explain_val.png").mode in ("RGB", "RGBA"))


def test_an_ensemble_is_explained_through_its_first_member(tiny_prepared, judge, tmp_path):
    member = read_checkpoint(judge)
    path = tmp_path / "ens.pt"
    torch.save({"kind": KIND, "format_version": FORMAT_VERSION, "combine": "mean",
                "members": [member, member], "threshold": 0.5}, path)
    lines = []
    s = run_explain(ExplainConfig(model_path=str(path), out_dir=str(tmp_path / "e"),
                                  data_dir=str(tiny_prepared), methods=["gradcam"], per_group=2),
                    log=lines.append)
    assert "first member's (resnet18)" in s["ensemble_note"] and (
        any("ensemble of 2 models" in m for m in lines))


def test_a_plain_image_folder_shows_highest_and_lowest_scores(judge, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.full((20, 24), 40 * i, np.uint8), mode="L").save(folder / f"x{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")  # left out, not fatal
    s = run_explain(ExplainConfig(model_path=str(judge), out_dir=str(tmp_path / "e"), images=str(folder),
                                  per_group=3), log=lambda _m: None)
    groups = s["sources"]["images"]["groups"]
    assert list(groups) == ["highest scores", "lowest scores"] and groups["lowest scores"]["shown"] == 3
    assert s["sources"]["images"]["n"] == 5


@pytest.mark.parametrize("args, message", [
    ([], "nothing to explain: give --data"),
    (["--images", "{empty_samples}"], "samples.csv lists no samples"),
    (["--images", "{no_images}"], "holds no image files"),
    (["--data", "{data}", "--layer", "layer9"], "--layer 'layer9' is not a layer of resnet18"),
    (["--data", "{data}", "--methods", "gradcam,lime"], "unknown --methods lime"),
    (["--data", "{data}", "--per-group", "0"], "--per-group must be at least 1"),
])
def test_bad_input_is_one_line_naming_the_problem(args, message, tiny_prepared, judge, tmp_path):
    empty = tmp_path / "empty_samples"
    empty.mkdir()
    (empty / "samples.csv").write_text("file,seed,class,trunc,snapshot,accepted,rejected_by\n")
    (tmp_path / "no_images").mkdir()
    values = {"empty_samples": str(empty), "no_images": str(tmp_path / "no_images"),
              "data": str(tiny_prepared)}
    argv = ["explain", str(judge), "--out", str(tmp_path / "out"), "--device", "cpu"]
    result = CliRunner().invoke(main, argv + [a.format(**values) for a in args])
    one_line_error(result, message)
