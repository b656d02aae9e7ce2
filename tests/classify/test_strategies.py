"""Strategy registry and the pieces it switches on: sampler, loss weights, focal, augmentation, mixing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from classify.core.errors import UserError
from classify.train.augment import apply_classic, classic_augment, cutmix, mixup
from classify.train.batches import batch_slices, epoch_indices
from classify.train.losses import inverse_frequency_weights, smooth_one_hot, soft_cross_entropy
from classify.train.strategies import build_strategy, list_strategies


def test_composition_and_errors() -> None:
    s = build_strategy("oversample+classic+mixup")
    assert s.balanced_sampler and s.classic and s.mixes == ["mixup"]
    assert not s.class_weights and s.focal_gamma == 0 and s.synthetic is None
    assert build_strategy("gan_filtered+classic").synthetic == "accepted"
    assert build_strategy("gan").synthetic == "all"
    assert build_strategy("focal+class_weight").focal_gamma == 2.0
    with pytest.raises(UserError, match="unknown strategy 'smote'.*baseline.*gan_filtered"):
        build_strategy("oversample+smote")
    with pytest.raises(UserError, match="exclude each other"):
        build_strategy("gan+gan_filtered")
    with pytest.raises(UserError, match="repeats"):
        build_strategy("classic+classic")


def test_oversample_gives_balanced_batches() -> None:
    labels = torch.tensor([0] * 20 + [1] * 380)  # 5% minority
    gen = torch.Generator().manual_seed(0)
    minority = 0
    drawn = 0
    for _ in range(5):
        for idx in batch_slices(epoch_indices(labels, balanced=True, gen=gen), 40):
            minority += int((labels[idx] == 0).sum())
            drawn += idx.numel()
    # Without oversampling the minority would be 5% of the draws; balanced means ~50%.
    assert drawn == 5 * 400
    assert 0.45 < minority / drawn < 0.55
    plain = epoch_indices(labels, balanced=False, gen=gen)
    assert sorted(plain.tolist()) == list(range(400))  # a permutation: each image once


def test_class_weights_are_inverse_frequency() -> None:
    labels = torch.tensor([0] * 30 + [1] * 10 + [2] * 0 + [3] * 40)
    w = inverse_frequency_weights(labels, 4)
    expected = torch.tensor([80 / (4 * 30), 80 / (4 * 10), 0.0, 80 / (4 * 40)])
    torch.testing.assert_close(w, expected)
    assert w[1] / w[0] == pytest.approx(3.0)  # 3x rarer -> 3x weight


def test_soft_ce_matches_torch_and_focal_downweights_easy_examples() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    target = smooth_one_hot(y, 3)
    torch.testing.assert_close(soft_cross_entropy(logits, target), F.cross_entropy(logits, y))
    w = torch.tensor([1.0, 2.0, 0.5])
    torch.testing.assert_close(soft_cross_entropy(logits, target, class_weights=w),
                               (F.cross_entropy(logits, y, reduction="none") * w[y]).mean())
    easy = torch.tensor([[4.0, -4.0]])
    one = smooth_one_hot(torch.tensor([0]), 2)
    assert soft_cross_entropy(easy, one, focal_gamma=2.0) < 1e-3 * soft_cross_entropy(easy, one)
    smoothed = smooth_one_hot(y, 3, smoothing=0.3)
    torch.testing.assert_close(smoothed.sum(1), torch.ones(6))
    assert smoothed.max() == pytest.approx(0.8)


@pytest.mark.parametrize("mix", [mixup, cutmix])
def test_mixed_labels_sum_to_one(mix) -> None:
    torch.manual_seed(1)
    x = torch.rand(8, 1, 16, 16)
    y = smooth_one_hot(torch.tensor([0, 1] * 4), 2)
    xm, ym = mix(x, y, 1.0, torch.Generator().manual_seed(3))
    assert xm.shape == x.shape
    torch.testing.assert_close(ym.sum(1), torch.ones(8))
    assert ((ym > 0) & (ym < 1)).any()  # something was actually mixed


def test_cutmix_label_equals_pasted_area() -> None:
    x = torch.zeros(2, 1, 20, 20)
    x[1] = 1.0
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    for seed in range(5):
        xm, ym = cutmix(x, y, 1.0, torch.Generator().manual_seed(seed))
        for i in range(2):
            from_partner = (xm[i] != x[i]).float().mean()
            partner_share = ym[i, 1] if i == 0 else ym[i, 0]
            # The partner's share of the label is the fraction of pixels that came from it.
            assert float(partner_share) == pytest.approx(float(from_partner))


def test_classic_keeps_shape_dtype_range_and_changes_images() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 1, 32, 32)
    out = apply_classic(classic_augment(p=1.0), x.clone())
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert (out - x).abs().mean() > 0.01
    rgb = torch.rand(2, 3, 32, 32)
    assert apply_classic(classic_augment(p=1.0), rgb).shape == rgb.shape


def test_every_registry_part_is_exercised() -> None:
    # The per-strategy training test in test_classify_train.py parametrises over this list.
    assert set(list_strategies()) == {"baseline", "class_weight", "oversample", "focal", "classic", "mixup",
                                      "cutmix", "gan", "gan_filtered"}
