"""Time the sample browser (browse.html) in headless Chromium: open and sort N samples.

    python scripts/bench/browse.py --sizes 1000,10000

For each size a sample folder of N small PNGs is written to a temporary folder, browse.html is
built the way `gen sample` builds it, and Chromium loads it with a sort in the URL hash
(`#sort=brightness&dir=desc`). The page records how long its script took to parse the data, build
every card and sort them (`data-ready-ms`); the wall time of the whole Chromium run (start-up
included) is printed beside it, and the ratio of each size's script time to the smallest size's.
Needs Debian's chromium (`scripts/test.sh` installs it).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gen.sample.browse import write_browser
from gen.sample.files import save_png

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000"]
HEADER = ["file", "seed", "class", "judge_confidence", "twosample_score", "accepted", "rejected_by"]


def sample_folder(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    table, images = [], []
    for seed in range(n):
        img = torch.from_numpy(rng.integers(0, 256, (1, 16, 16), dtype=np.uint8))
        name = f"images/bad/seed{seed:07d}.png"
        save_png(img, root / name)
        images.append(img)
        table.append([name, seed, "bad", round(float(rng.random()), 4), round(float(rng.random()), 4),
                      int(seed % 3 != 0), "" if seed % 3 else "judge"])
    write_browser(root, HEADER, table, torch.stack(images), {"bad": torch.stack(images[:64])},
                  np.arange(n) % 64)
    return root / "browse.html"


def load_ms(page: Path, chromium: str, profile: Path) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                           page.resolve().as_uri() + "#sort=brightness&dir=desc"],
                          capture_output=True, text=True, timeout=300)
    wall = (time.perf_counter() - start) * 1000
    m = re.search(r'data-ready-ms="(\d+)"', done.stdout)
    if not m:
        raise SystemExit(f"the page did not finish (exit {done.returncode}): {done.stderr[-1000:]}")
    return float(m[1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            page = sample_folder(Path(tmp) / f"s{n}", n)
            runs = [load_ms(page, chromium, Path(tmp) / "profile") for _ in range(args.repeats)]
            results[n] = min(runs)
    base = results[sizes[0]][0]
    for n in sizes:
        script, wall = results[n]
        print(f"{n:6d} samples: page script (parse, build, sort) {script:7.0f} ms, "
              f"whole Chromium run {wall:7.0f} ms, "
              f"script ratio to {sizes[0]} samples {script / max(base, 1):.1f}x  (best of {args.repeats})")


if __name__ == "__main__":
    main()
