"""Set-level metrics between sample features and real features.

Fréchet distance, kernel distance (KID's MMD) and precision/recall come from torch-fidelity's
own functions so that our numbers are the library's numbers; density and coverage (Naeem et
al. 2020) are not in torch-fidelity, so they are computed here from the same k-NN radii
(k-th nearest neighbour, excluding the point itself, as torch-fidelity does).

Every function takes 2-D float feature tensors [N, D]; which extractor made them is the
caller's business, and the caller names the result by extractor (see gen/core/metrics.py).
"""

from __future__ import annotations

import numpy as np
import torch

from classify.core.errors import UserError

# torch-fidelity is imported inside the functions: importing it pulls in CLIP/torchvision
# detection modules (seconds), and `gen --help` should not pay for that.

KID_MAX_SUBSET = 1000
KID_SUBSETS = 100


def _as_2d(feats: torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
    t = torch.as_tensor(feats).detach().cpu().to(torch.float64)
    if t.ndim != 2:
        raise ValueError(f"{what} features must be 2-D [N, D], got shape {tuple(t.shape)}")
    return t


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, exact: bool = True) -> torch.Tensor:
    """Euclidean distances [len(a), len(b)] in float64.

    The matmul shortcut of cdist gives an exact copy a distance of ~1e-8 instead of 0, which
    would let a copied training image slip past the memorisation threshold, so decisions use
    the direct computation; `exact=False` (matmul, far faster in high dimensions) is for
    numbers that are only reported, such as pixel-space distances.
    """
    mode = "donot_use_mm_for_euclid_dist" if exact else "use_mm_for_euclid_dist"
    return torch.cdist(_as_2d(a, "first"), _as_2d(b, "second"), compute_mode=mode).clamp_min(0)


def knn_radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest *other* point of the same set."""
    f = _as_2d(feats, "set")
    if len(f) <= k:
        raise UserError(f"k-NN radii need more than k={k} points, got {len(f)}; add real images or lower k")
    # kthvalue(k + 1): the 1st smallest distance is the point to itself (0).
    return pairwise_distances(f, f).kthvalue(k + 1, dim=1).values


def frechet_distance(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the two feature sets (torch-fidelity's formula)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric  # noqa: PLC0415 — torch-fidelity: heavy

    f, r = _as_2d(fake, "fake"), _as_2d(real, "real")
    if len(f) < 2 or len(r) < 2:
        raise UserError("Fréchet distance needs at least 2 images per set, "
                        f"got {len(f)} fake and {len(r)} real")
    key = "frechet_inception_distance"  # torch-fidelity's key name, whatever the extractor
    return float(fid_statistics_to_metric(fid_features_to_statistics(f), fid_features_to_statistics(r),
                                          False)[key])


def kid_subset_size(n_fake: int, n_real: int) -> int:
    """KID subsets are min(1000, n) so that small rare classes still get a number."""
    return min(KID_MAX_SUBSET, n_fake, n_real)


def kernel_distance(fake: torch.Tensor, real: torch.Tensor, subsets: int = KID_SUBSETS,
                    seed: int = 0) -> dict:
    """KID-style unbiased MMD² with the cubic polynomial kernel: {'mean', 'std', 'subset_size'}."""
    from torch_fidelity.metric_kid import (  # noqa: PLC0415 — torch-fidelity: heavy
        KEY_METRIC_KID_MEAN,
        KEY_METRIC_KID_STD,
        kid_features_to_metric,
    )

    f, r = _as_2d(fake, "fake"), _as_2d(real, "real")
    size = kid_subset_size(len(f), len(r))
    if size < 2:
        raise UserError("kernel distance needs at least 2 images per set, "
                        f"got {len(f)} fake and {len(r)} real")
    out = kid_features_to_metric(
        f, r, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False
    )
    return {"mean": out[KEY_METRIC_KID_MEAN], "std": out[KEY_METRIC_KID_STD], "subset_size": size}


def prdc(fake: torch.Tensor, real: torch.Tensor, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` against `real` (Naeem et al. 2020).

    precision: fraction of fakes inside some real k-NN ball; recall: fraction of reals inside
    some fake k-NN ball; density: mean count of real balls holding each fake, divided by k
    (about 1 when fakes look like reals, >1 when they crowd dense regions); coverage: fraction
    of reals whose ball holds at least one fake.
    """
    from torch_fidelity.metric_prc import (  # noqa: PLC0415 — torch-fidelity: heavy
        KEY_METRIC_PRECISION,
        KEY_METRIC_RECALL,
        prc_features_to_metric,
    )

    f, r = _as_2d(fake, "fake"), _as_2d(real, "real")
    if len(f) <= k or len(r) <= k:
        raise UserError(f"PRDC with k={k} needs more than {k} images per set, "
                        f"got {len(f)} fake and {len(r)} real")
    pr = prc_features_to_metric(f, r, prc_neighborhood=k, verbose=False, save_cpu_ram=False)
    real_radii = knn_radii(r, k)
    inside = pairwise_distances(f, r) <= real_radii[None, :]  # [n_fake, n_real]
    return {
        "precision": float(pr[KEY_METRIC_PRECISION]),
        "recall": float(pr[KEY_METRIC_RECALL]),
        "density": float(inside.sum(dim=1).double().mean() / k),
        "coverage": float(inside.any(dim=0).double().mean()),
        "k": k,
    }
