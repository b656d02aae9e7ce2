"""Aspect ratios of a prepared folder's images, and the one rule that resolves `--fit auto`.

Every ratio here is long side / short side (>= 1), taken from the manifest's width and
height (no image is decoded). A centre crop to a square keeps short/long of the image, so
an image with ratio r loses 1 - 1/r of its area to `--fit crop`.

The `auto` rule (`resolve_fit`): `pad` when more than 5% of the images have a ratio above
1.1 (a crop would cut about a tenth of each of them away, and with it any defect near an
edge); otherwise `crop`. For square images (ELPV) both give the same pixels.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from classify.data.images import check_fit
from classify.data.manifest import MANIFEST_NAME, read_manifest

# `auto` pads when more than AUTO_PAD_SHARE of the images have long/short > AUTO_RATIO.
AUTO_RATIO = 1.1
AUTO_PAD_SHARE = 0.05
# The crop warning: long/short > 4/3 means a centre crop cuts more than a quarter of the image.
QUARTER_CUT_RATIO = 4 / 3


def aspect_ratio(width: int | str, height: int | str) -> float:
    """long side / short side of one image (1.0 for a square)."""
    w, h = int(width), int(height)
    return max(w, h) / max(1, min(w, h))


def manifest_aspect_ratios(rows: list[dict[str, str]]) -> list[float]:
    """The ratio of every manifest row, in manifest order."""
    return [aspect_ratio(r["width"], r["height"]) for r in rows]


def prepared_aspect_ratios(root: str | Path) -> list[float]:
    """The ratios of every image listed in a prepared folder's manifest.csv."""
    rows, _ = read_manifest(Path(root).expanduser() / MANIFEST_NAME)
    return manifest_aspect_ratios(rows)


def resolve_fit(requested: str, aspect_ratios: list[float]) -> str:
    """The fit to use: `requested` itself unless it is `auto`, which becomes `pad` when more
    than 5% of the images have long/short > 1.1 (they would lose about a tenth of their area
    or more to a centre crop), else `crop`. An unknown name raises UserError (check_fit)."""
    if check_fit(requested) != "auto":
        return requested
    return "pad" if _share_above(aspect_ratios, AUTO_RATIO) > AUTO_PAD_SHARE else "crop"


def _share_above(ratios: list[float], threshold: float) -> float:
    return sum(1 for r in ratios if r > threshold) / len(ratios) if ratios else 0.0


def aspect_summary(ratios: list[float]) -> dict[str, float | int | str]:
    """min / median / max ratio, the shares above 4/3 and 2, the quarter-cut count, and what `auto` picks."""
    if not ratios:
        return {"n": 0, "auto_fit": resolve_fit("auto", [])}
    return {
        "n": len(ratios),
        "min": min(ratios), "median": statistics.median(ratios), "max": max(ratios),
        "share_above_4_3": _share_above(ratios, QUARTER_CUT_RATIO),
        "share_above_2": _share_above(ratios, 2.0),
        "quarter_cut": sum(1 for r in ratios if r > QUARTER_CUT_RATIO),
        "auto_fit": resolve_fit("auto", ratios),
    }


def aspect_line(summary: dict) -> str:
    """One line for the CLI: the spread and what `--fit auto` resolves to."""
    if not summary["n"]:
        return "aspect ratio (long/short side): no images"
    return (f"aspect ratio (long/short side): min {summary['min']:.2f}, median {summary['median']:.2f}, "
            f"max {summary['max']:.2f}; {summary['share_above_4_3']:.0%} above 4/3, {summary['share_above_2']:.0%} "
            f"above 2; --fit auto resolves to {summary['auto_fit']}")


def crop_warning(summary: dict) -> list[str]:
    """The warning when `--fit crop` would cut more than a quarter of some images."""
    n = summary.get("quarter_cut", 0)
    if not n:
        return []
    return [f"--fit crop would cut more than a quarter of {n} of {summary['n']} image(s) (long/short side > 4/3, up "
            f"to {summary['max']:.2f}); a defect near an edge can be cut away — use --fit pad (or auto, which "
            f"resolves to {summary['auto_fit']} here)"]
