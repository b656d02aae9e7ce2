"""Classifier tools for small data: pretrained backbones (never downloaded here), timm
architectures by name, head warm-up and backbone LR, plateau schedule, progressive resizing,
decoupled heads, test-time augmentation and classic-augmentation strength levels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from classify_helpers import make_square_dataset

from classify.core.errors import UserError
from classify.model.models import build_model
from classify.train.config import ClassifierTrainConfig
from classify.train.trainer import train_classifier


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_square_dataset(tmp_path_factory.mktemp("finetune"))


def _cfg(data_dir: Path, out: Path, **kw) -> ClassifierTrainConfig:
    base = dict(data_dir=str(data_dir), out_dir=str(out), model_name="resnet18", epochs=2, res=16, batch=8,
                device="cpu", progress=False, seed=0)
    return ClassifierTrainConfig(**(base | kw))


def test_pretrained_imagenet_asks_timm_for_weights_with_one_input_channel(monkeypatch):
    import timm

    calls = []
    real = timm.create_model

    def fake(arch, pretrained=False, **kw):  # what timm would build, minus the download
        calls.append((arch, pretrained, kw.get("in_chans")))
        return real(arch, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", fake)
    net = build_model("resnet18", num_classes=2, in_chans=1, pretrained="imagenet")
    assert calls == [("resnet18", True, 1)] and net.backbone.conv1.weight.shape[1] == 1


def test_pretrained_imagenet_offline_is_one_line_saying_how_to_pass_a_file(monkeypatch):
    import timm

    def offline(*a, **kw):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this file")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(UserError,
                       match=r"cannot fetch the ImageNet weights of resnet18 .*--pretrained FILE") as exc:
        build_model("resnet18", num_classes=2, in_chans=1, pretrained="imagenet")
    assert "\n" not in str(exc.value)


def test_vgg_imagenet_stem_is_adapted_like_timm(monkeypatch):
    import torchvision

    real = torchvision.models.vgg11_bn
    seen = {}

    def fake(weights=None):
        seen["weights"] = weights
        return real(weights=None)  # random "ImageNet" weights: the adaptation rule is what is checked

    monkeypatch.setattr(torchvision.models, "vgg11_bn", fake)
    torch.manual_seed(0)
    net = build_model("vgg11_bn", num_classes=2, in_chans=1, pretrained="imagenet")
    assert seen["weights"] == "IMAGENET1K_V1" and net.backbone.features[0].weight.shape[1] == 1


def test_any_timm_architecture_by_name_trains(data_dir, tmp_path):
    r = train_classifier(_cfg(data_dir, tmp_path / "t", model_name="timm:resnet10t", res=32, epochs=1))
    assert r["best_epoch"] == 1
    with pytest.raises(UserError, match="unknown timm architecture"):
        _cfg(data_dir, tmp_path / "x", model_name="timm:no_such_net").validate()


def test_head_warmup_freezes_the_backbone_and_its_statistics(data_dir):
    from classify.train.data import load_classifier_train_data
    from classify.train.loop import build_step, train_epoch
    from classify.train.strategies import build_strategy

    cfg = _cfg(data_dir, Path("unused"), warmup_head_epochs=1, epochs=2)
    data = load_classifier_train_data(cfg, None)
    st, net = build_step(cfg, build_strategy("baseline"), data, torch.device("cpu"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    train_epoch(cfg, build_strategy("baseline"), st, data, epoch=1)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))
    assert not torch.equal(before["head.weight"], after["head.weight"])
    train_epoch(cfg, build_strategy("baseline"), st, data, epoch=2)
    assert not torch.equal(before["backbone.conv1.weight"], net.state_dict()["backbone.conv1.weight"])


def test_backbone_lr_multiplier_and_plateau_schedule(data_dir):
    from classify.train.loop import make_optimizer, make_schedule

    cfg = _cfg(data_dir, Path("unused"), lr=0.01, backbone_lr_mult=0.1, lr_schedule="plateau",
               warmup_epochs=0)
    net = build_model("resnet18", num_classes=2, in_chans=1)
    opt = make_optimizer(cfg, net)
    head_ids = {id(p) for p in net.head.parameters()}
    for group in opt.param_groups:
        is_head = all(id(p) in head_ids for p in group["params"])
        assert group["lr"] == pytest.approx(0.01 if is_head else 0.001)
    _, plateau = make_schedule(cfg, opt, steps_per_epoch=3)
    for _ in range(4):  # no improvement for more than `patience` epochs: the LR halves
        plateau.step(0.5)
    assert max(g["lr"] for g in opt.param_groups) == pytest.approx(0.005)


def test_progressive_resizing_trains_small_first_and_keeps_only_the_final_resolution(data_dir, tmp_path):
    from classify.train.loop import epoch_resolutions

    assert epoch_resolutions(_cfg(data_dir, tmp_path, epochs=5, res=32, res_schedule=[16, 32])) == (
        [16, 16, 32, 32, 32])
    out = tmp_path / "prog"
    r = train_classifier(_cfg(data_dir, out, epochs=3, res=32, res_schedule=[16, 32]))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["res"] for row in rows] == [16, 32, 32]
    assert not rows[0]["improved"] and r["best_epoch"] >= 2
    assert torch.load(out / "model.pt", weights_only=True)["res"] == 32
    with pytest.raises(UserError, match="the last resolution is the model's"):
        _cfg(data_dir, tmp_path / "x", res=32, res_schedule=[32, 16]).validate()


@pytest.mark.parametrize("head", ["logreg", "svm"])
def test_decoupled_head_is_stored_as_arrays_and_used_by_eval(data_dir, tmp_path, head):
    from classify.evaluate.evaluation import evaluate_checkpoint
    from classify.model.loading import load_classifier

    out = tmp_path / head
    r = train_classifier(_cfg(data_dir, out, head=head))
    ckpt = torch.load(out / "model.pt", weights_only=True)  # plain arrays: loads with weights_only
    assert ckpt["head"]["kind"] == head and ckpt["head"]["coef"].shape[1] == 512
    assert r["head"] == head and ckpt["threshold"] == r["threshold"]
    clf = load_classifier(out / "model.pt")
    x = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    linear = torch.softmax(clf.model((x.float() / 255 - 0.5) / 0.5), dim=1)
    assert not torch.allclose(clf.predict_proba(x), linear, atol=1e-4)  # the decoupled head decides
    m = evaluate_checkpoint(out / "model.pt", data_dir, split="test")
    assert 0.0 <= m["average_precision"] <= 1.0


def test_logreg_head_probabilities_match_scikit_learn():
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from classify.model.heads import fit_head, head_probabilities

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(60, 5, generator=g)
    labels = (feats[:, 0] + 0.3 * torch.randn(60, generator=g) > 0).long()
    ours = head_probabilities(fit_head("logreg", feats, labels), feats)
    scaler = StandardScaler().fit(feats.double().numpy())
    ref = LogisticRegression(class_weight="balanced", max_iter=5000, random_state=0).fit(
        scaler.transform(feats.double().numpy()), labels.numpy())
    assert np.allclose(ours.numpy(), ref.predict_proba(scaler.transform(feats.double().numpy())), atol=1e-5)


def test_tta_averages_the_views(data_dir, tmp_path):
    from classify.model.loading import load_classifier

    out = tmp_path / "tta"
    train_classifier(_cfg(data_dir, out, epochs=1))
    clf = load_classifier(out / "model.pt")
    x = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8)
    expected = (clf.predict_proba(x) + clf.predict_proba(x.flip(3))) / 2
    assert torch.allclose(clf.predict_proba(x, tta="flip"), expected, atol=1e-6)
    four = [x, x.flip(3), x.flip(2), x.flip(2).flip(3)]
    assert torch.allclose(clf.predict_proba(x, tta="flips"), sum(map(clf.predict_proba, four)) / 4, atol=1e-6)
    with pytest.raises(UserError, match="--tta"):
        clf.predict_proba(x, tta="rotate")


def test_classic_levels_are_documented_kornia_recipes():
    import kornia.augmentation as K

    from classify.train.augment import CLASSIC_LEVELS, apply_classic, classic_augment

    x = torch.rand(4, 1, 16, 16)
    for level in CLASSIC_LEVELS:
        assert apply_classic(classic_augment(level, p=1.0), x.clone()).shape == x.shape
    mild = [type(m) for m in classic_augment("mild").children()]
    assert K.RandomErasing not in mild and K.RandomGaussianNoise not in mild  # nothing covers a defect
    assert K.RandomErasing in [type(m) for m in classic_augment("strong").children()]
    assert ClassifierTrainConfig().classic == "mild"


def test_timm_models_with_a_pre_logits_head_get_the_right_head_width():
    """MobileNetV3's pooled output is its 1024-wide conv head, not num_features (576)."""
    net = build_model("timm:mobilenetv3_small_100", num_classes=2, in_chans=1)
    assert net(torch.zeros(2, 1, 64, 64)).shape == (2, 2)
