"""Model registry: every model trains a step at in_chans 1 and 3; pretrained loading from a file."""

from __future__ import annotations

import pytest
import torch

from classify.core.errors import UserError
from classify.model.models import build_model, list_models


@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("name", list_models())
def test_forward_backward_and_features(name: str, in_chans: int) -> None:
    torch.manual_seed(0)
    net = build_model(name, num_classes=3, in_chans=in_chans)
    x = torch.randn(2, in_chans, 32, 32)
    logits = net(x)
    assert logits.shape == (2, 3)
    logits.sum().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        feats = net.eval().features(x)
    assert feats.shape == (2, net.num_features)
    assert torch.isfinite(feats).all()


@pytest.mark.parametrize("name", list_models())
def test_min_res_is_the_smallest_input_that_works(name: str) -> None:
    from classify.model.models import model_spec

    low = model_spec(name).min_res
    net = build_model(name, num_classes=2, in_chans=1).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 1, low, low)).shape == (1, 2)
        if low > 8:
            with pytest.raises(RuntimeError):
                net(torch.zeros(1, 1, low - 8, low - 8))
            with pytest.raises(UserError, match=f"needs --res >= {low}"):
                model_spec(name, low - 8)


def test_registry_lists_the_issue_models() -> None:
    assert set(list_models()) == {"resnet18", "resnet34", "resnet50", "vgg11_bn", "vgg16_bn", "densenet121",
                                  "efficientnet_b0"}


def test_unknown_model_lists_valid_ones() -> None:
    with pytest.raises(UserError, match="unknown model 'resnet9'.*resnet18.*efficientnet_b0"):
        build_model("resnet9", num_classes=2)


def test_pretrained_rgb_file_adapts_to_grayscale(tmp_path) -> None:
    import timm

    src = timm.create_model("resnet18", pretrained=False, num_classes=1000)  # an ImageNet-shaped checkpoint
    path = tmp_path / "r18.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    net = build_model("resnet18", num_classes=2, in_chans=1, pretrained=path)
    stem = net.backbone.conv1.weight
    assert stem.shape[1] == 1
    # timm's adaptation sums the RGB filters for a single channel.
    torch.testing.assert_close(stem, src.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(net.backbone.layer4[1].conv2.weight, src.layer4[1].conv2.weight)
    assert net.head.out_features == 2


def test_pretrained_from_another_architecture_is_a_user_error(tmp_path) -> None:
    path = tmp_path / "wrong.pt"
    torch.save(build_model("efficientnet_b0", num_classes=2).backbone.state_dict(), path)
    with pytest.raises(UserError, match="do not fit this model"):
        build_model("resnet18", num_classes=2, pretrained=path)
    with pytest.raises(UserError, match="not found"):
        build_model("resnet18", num_classes=2, pretrained=tmp_path / "missing.pt")


def test_vgg_pretrained_torchvision_names(tmp_path) -> None:
    import torchvision

    src = torchvision.models.vgg11_bn(weights=None)
    path = tmp_path / "vgg.pt"
    torch.save(src.state_dict(), path)
    net = build_model("vgg11_bn", num_classes=2, in_chans=3, pretrained=path)
    torch.testing.assert_close(net.backbone.features[0].weight, src.features[0].weight)
