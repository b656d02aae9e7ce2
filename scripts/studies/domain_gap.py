"""Where does the domain gap live? Two-sample AUCs of one sample set against the real train images
of its class on different views of the pixels.

    python scripts/studies/domain_gap.py --data DATA --samples SAMPLES_DIR --class defective [--accepted]

Each view is fed to the same classifier two-sample test as `gen sample`'s domain-gap block
(classify.evaluate.twosample: class-balanced logistic regression, 5 held-out folds):
- `pixels` at the samples' resolution, and area-averaged to 16x16, 8x8 and 4x4 (coarse layout);
- `detail`: the image minus its 2x2 / 4x4 box blur (fine texture only);
- `spectrum`: log power of the 2-D FFT (where in frequency the energy sits);
- `stats`: mean brightness and contrast only (4 numbers: mean, std, share above 0.9, below 0.1);
- `real train vs real val` on pixels: the floor, two real sets.
Reads only; prints a table (markdown) of AUCs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from classify.evaluate.twosample import image_stats, two_sample_test
from classify.train.synthetic import load_synthetic, read_images
from gen.sample.files import load_reals


def views(images: torch.Tensor) -> dict[str, np.ndarray]:
    x = images.float() / 255.0
    out = {}
    side = x.shape[-1]
    for s in sorted({side, 16, 8, 4}, reverse=True):
        if s <= side:
            out[f"pixels {s}x{s}"] = F.adaptive_avg_pool2d(x, s).flatten(1).double().numpy()
    for k in (2, 4):
        blur = F.interpolate(F.avg_pool2d(x, k), scale_factor=k, mode="nearest")
        out[f"detail (minus {k}x{k} blur)"] = (x - blur).flatten(1).double().numpy()
    spectrum = torch.fft.fft2(x.mean(1)).abs().square().add(1e-8).log()
    out["log power spectrum"] = spectrum.flatten(1).double().numpy()
    stats = image_stats(images)
    out["brightness, contrast, clipped shares"] = np.stack([stats[k] for k in sorted(stats)], axis=1)
    return out


def parser() -> argparse.ArgumentParser:
    """The flags (a function, so the study TOMLs' steps can be checked against it in tests)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--class", dest="cls", required=True)
    ap.add_argument("--accepted", action="store_true", help="the accepted samples only")
    ap.add_argument("--out", help="also write the table to this Markdown file")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    synth = load_synthetic(args.samples, accepted_only=args.accepted)
    files = [f for f, c in zip(synth.files, synth.classes) if c == args.cls]
    res = int(synth.info.get("res", 32))
    fake = read_images(files, res, int(synth.info.get("channels", 1)))
    fit = synth.info.get("fit", "crop")
    real, _ = load_reals(args.data, [args.cls], res, fake.shape[1], fit)[args.cls]
    val, _ = load_reals(args.data, [args.cls], res, fake.shape[1], fit, split="val")[args.cls]
    lines = [f"{len(real)} real train, {len(val)} real val, {len(fake)} samples of {args.cls!r} at {res}px "
             f"({'accepted' if args.accepted else 'all'} samples of {args.samples})", "",
             "| view | two-sample AUC, samples vs real train | real train vs real val (floor) |",
             "|---|---|---|"]
    fake_views, real_views, val_views = views(fake), views(real), views(val)
    for name in fake_views:
        gap = two_sample_test(real_views[name], fake_views[name]).auc
        floor = two_sample_test(real_views[name], val_views[name]).auc
        lines.append(f"| {name} | {gap:.3f} | {floor:.3f} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
