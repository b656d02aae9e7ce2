"""One tree's training step, served to `scripts/bench/train.py --against`: build, warm up, then
time whole 16-step cycles each time the parent asks.

Run with PYTHONPATH=TREE:TREE/vendor so that `gen` and `stylegan2_ada` come from TREE (the
current checkout or a `git worktree` of another commit); this file and `profile_train.py` (the
trainer built the way `gen train` builds it, found wherever that commit keeps `resolve_config`)
come from the current checkout, so both trees are timed by the same code.

Protocol (one JSON object per line on stdout): first {"ready": ..., "gen_file": ...}, then for
every line "N" read from stdin, {"seconds": ..., "images": ...} for N timed cycles. EOF ends it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from profile_train import CONFIGS, CYCLE, build_trainer, parse_assignments

import gen
from gen.train.log import TickStats


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="32")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--p", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup-cycles", type=int, default=1)
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE")
    return ap


def reply(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    trainer = build_trainer(args.config, args.precision, args.p, parse_assignments(args.assignments))
    stats = TickStats()
    t0 = time.perf_counter()
    for _ in range(args.warmup_cycles * CYCLE):  # allocator, oneDNN primitive caches, compile
        trainer.train_step(stats)
    reply({"ready": True, "warmup_s": time.perf_counter() - t0, "gen_file": gen.__file__,
           "batch": trainer.cfg.batch})
    for line in sys.stdin:
        cycles = int(line)
        t0 = time.perf_counter()
        for _ in range(cycles * CYCLE):
            trainer.train_step(stats)
        reply({"seconds": time.perf_counter() - t0, "images": cycles * CYCLE * trainer.cfg.batch})


if __name__ == "__main__":
    main()
