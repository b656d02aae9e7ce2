"""The StyleGAN2-ADA training loop behind `gen train`.

One step = one global batch of reals. For it, every due phase (G main, G reg every 4,
D main, D reg every 16) runs with fresh latents; then G_ema follows G, the image counter
advances, and every 4 D steps ADA moves p. A tick (every `tick_kimg` thousand images)
writes a metrics.jsonl row; every `snap` ticks (and at the end, on SIGINT/SIGTERM, and
whenever metrics run) a full snapshot is written so the run can continue exactly.

Run with torchrun for several processes: `torchrun --nproc_per_node 2 -m gen train ...`
(`gen train --gpus 2` does that for you).
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_json
from gen.train.config import GanTrainConfig, check_resume_config
from gen.train.data import BatchSampler, GanTrainData, load_gan_train_data, real_batch
from gen.train.distributed import Dist, env_rank, init_process_group, shutdown
from gen.train.grids import GridSpec, save_fakes, save_reals
from gen.train.log import RunLog, TickStats, memory_gb
from gen.train.metric_runner import MetricRunner
from gen.train.phases import AdaController, build_phases, run_phase
from gen.train.setup import (
    apply_transfer,
    build_loss,
    build_main_loss,
    build_training_networks,
    resolve_device,
)
from gen.train.snapshot import (
    ResumePoint,
    drop_preserved,
    list_snapshots,
    load_resume_point,
    preserve_best,
    prune_snapshots,
    remove_stale_temp_files,
    rng_state,
    save_snapshot,
    set_rng_state,
    snapshot_path,
)


@dataclass
class Counters:
    cur_nimg: int = 0
    batch_idx: int = 0
    cur_tick: int = 0
    tick_start_nimg: int = 0
    elapsed_s: float = 0.0  # training wall time over all sessions of this run


class NonFinite(Exception):
    """A loss or gradient became NaN/inf; the step was not applied."""


class LossScaler:
    """Dynamic loss scaling for fp16: scale the loss up so small gradients survive fp16,
    divide the gradients back, and skip steps (halving the scale) when they overflowed."""

    def __init__(self, enabled: bool, scale: float = 2.0**14, growth_interval: int = 1000):
        self.enabled, self.scale, self.good, self.growth_interval = (
            enabled, scale if enabled else 1.0, 0, growth_interval)

    def unscale(self, params: list[torch.nn.Parameter]) -> bool:
        grads = [p.grad for p in params if p.grad is not None]
        finite = all_finite(grads)
        if not self.enabled:
            if not finite:
                raise NonFinite("gradient")
            return True
        if not finite:
            self.scale, self.good = self.scale / 2, 0
            return False
        torch._foreach_div_(grads, self.scale)
        self.good += 1
        if self.good % self.growth_interval == 0:
            self.scale *= 2
        return True

    def state_dict(self) -> dict[str, float]:
        return {"scale": self.scale, "good": self.good}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.scale, self.good = float(d["scale"]), int(d["good"])


def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, cfg: GanTrainConfig, cur_nimg: int) -> None:
    """G_ema <- lerp(G, G_ema, beta), half-life ema_kimg (ramped up early in training)."""
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup)
    beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
    with torch.no_grad():
        # lerp(p, p_ema, beta) for every tensor in one call, then one copy: the same numbers
        # as a loop over the tensors, without ~4 small ops per tensor.
        ema = list(G_ema.parameters())
        torch._foreach_copy_(ema, torch._foreach_lerp(list(G.parameters()), ema, beta))
        torch._foreach_copy_(list(G_ema.buffers()), list(G.buffers()))


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether no tensor holds a NaN or an infinity, with one host sync (not one per tensor).

    A NaN or an infinity makes a tensor's sum NaN or infinite; summed in float64 no finite
    float32 (or lower) tensor of under 1e200 elements can overflow, so the sum tells exactly.
    On a CPU the per-tensor sums are ~4x cheaper than torch's multi-tensor max-norm, which
    runs one norm per tensor there (0.27 against 1.10 ms for G's 56 gradients at 32²); on a
    GPU that multi-tensor kernel is one launch, so it stays there."""
    if not tensors:
        return True
    if tensors[0].device.type == "cpu":
        return bool(torch.stack([t.sum(dtype=torch.float64) for t in tensors]).isfinite().all())
    return bool(torch.stack(torch._foreach_norm(tensors, float("inf"))).isfinite().all())


@contextmanager
def stop_on_signals(trainer: Trainer):
    """SIGINT/SIGTERM ask the loop to snapshot and stop at the end of the current step."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        trainer.stop_signal = signal.Signals(signum).name

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Trainer:
    def __init__(self, cfg: GanTrainConfig, log=print, data: GanTrainData | None = None,
                 resume: ResumePoint | None = None):
        """`data` replaces the prepared folder (benchmarks feed random images); `resume` is the
        snapshot `cfg.resume` names, when the caller (the CLI) has already read and checked it."""
        self.cfg, self.out_dir = cfg, Path(cfg.out_dir)
        self.device = resolve_device(cfg, rank=env_rank()[0])
        self.dist: Dist = init_process_group(self.device)
        self.say = log if self.dist.is_main else (lambda msg: None)
        self.stop_signal: str | None = None
        snap = self._resume_point(resume)
        self.data = data if data is not None else self._load_data()
        torch.manual_seed(cfg.seed)  # identical initial networks on every rank
        self.nets = build_training_networks(cfg, self.data.c_dim, self.data.channels, self.device)
        self.transfer_from: dict | None = None  # what --resume-from copied, re-initialised and froze
        if cfg.resume_from and snap is None:
            self.transfer_from = apply_transfer(self.nets, Path(cfg.resume_from), cfg.freeze_d, self.say)
        self.loss = build_loss(cfg, self.nets)  # eager; owns pl_mean
        self.loss_main = build_main_loss(cfg, self.nets, self.loss)  # compiled view with --compile
        self.phases = build_phases(self.nets.G, self.nets.D, cfg)
        self.ada = AdaController(self.nets.augment_pipe, cfg.target, cfg.ada_interval, cfg.ada_kimg,
                                 cfg.aug == "ada")
        self.scaler = LossScaler(cfg.precision == "fp16")
        self.sampler = BatchSampler(len(self.data.images), cfg.mirror, cfg.seed)
        # Latents and fake labels come from one generator shared by all ranks, so the
        # global batch is the same whatever the process count (each rank takes a slice).
        self.draws = torch.Generator().manual_seed(cfg.seed + 1)
        self.counters = Counters()
        self.metric_history: list[dict[str, Any]] = []
        self.best: dict | None = None
        self.grid = GridSpec.build(cfg, self.data)
        self.metrics = (MetricRunner(cfg, self.data, self.device) if cfg.metrics and self.dist.is_main
                        else None)
        torch.manual_seed(cfg.seed + 7919 * self.dist.rank)  # per-rank noise/augment/mixing draws
        self.resumed_from = snap.path if snap is not None else None
        if snap is not None:
            self._restore(snap.state)

    # --- setup helpers -------------------------------------------------------------
    def _resume_point(self, given: ResumePoint | None) -> ResumePoint | None:
        if not self.cfg.resume:
            if list_snapshots(self.out_dir):  # a fresh run here would interleave with that one's files
                raise UserError(f"{self.out_dir} already holds a training run (network-snapshot-*.pt); "
                                f"continue it with --resume {self.out_dir}, or pick a new --out")
            return None
        if given is not None:
            return given  # found, read and checked by the caller (resolve_config)
        point = load_resume_point(self.cfg.resume, self.cfg.out_dir)
        check_resume_config(point.config, self.cfg.to_dict(), point.path)
        return point

    def _load_data(self):
        # Rank 0 builds the uint8 cache first; the others then read it instead of racing.
        if not self.dist.is_main:
            self.dist.barrier()
        data = load_gan_train_data(self.cfg)
        if self.dist.is_main:
            self.dist.barrier()
        return data

    def _restore(self, snap: dict[str, Any]) -> None:
        if snap.get("manifest_hash") not in (None, self.data.manifest_hash):
            raise UserError(f"--resume {self.resumed_from}: the training data changed since this snapshot "
                            f"(manifest hash {snap['manifest_hash'][:12]} -> "
                            f"{self.data.manifest_hash[:12]}); "
                            "resume needs the same prepared data, or start a new run with --resume-from")
        n = self.nets
        for module, key in ((n.G, "G"), (n.D, "D"), (n.G_ema, "G_ema")):
            module.load_state_dict(snap[key])
        opt_by_net = {p.name[0]: p.opt for p in self.phases}
        opt_by_net["G"].load_state_dict(snap["G_opt"])
        opt_by_net["D"].load_state_dict(snap["D_opt"])
        self.loss.load_state_dict(snap["loss"])
        self.ada.load_state_dict(snap["ada"])
        self.scaler.load_state_dict(snap["scaler"])
        self.sampler.load_state_dict(snap["sampler"])
        self.draws.set_state(snap["draws_rng"])
        self.counters = Counters(**snap["counters"])
        self.metric_history, self.best = list(snap["metric_history"]), snap["best"]
        self.transfer_from = snap.get("transfer")
        by_rank = snap.get("rng_by_rank") or [snap["rng"]]
        if len(by_rank) == self.dist.world:
            set_rng_state(by_rank[self.dist.rank])
        else:  # a different process count: exact continuation is impossible, keep streams distinct
            torch.manual_seed(self.cfg.seed + 7919 * self.dist.rank + self.counters.cur_nimg)
            self.say(f"note: snapshot from {len(by_rank)} process(es), resuming on {self.dist.world}: "
                     "same state, new random streams")
        self.say(f"resumed from {self.resumed_from} at kimg {self.counters.cur_nimg / 1000:.3f}, "
                 f"ADA p {self.ada.p:.4f}")

    # --- the loop ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg, c = self.cfg, self.counters
        total = int(round(cfg.kimg * 1000))
        if self.dist.is_main and self.out_dir.is_dir():
            stale = remove_stale_temp_files(self.out_dir)
            if stale:
                self.say(f"removed {len(stale)} partial file(s) left by an interrupted write")
        if self.resumed_from is not None and (c.cur_nimg >= total or self._budget_spent(0.0)):
            # Nothing to train: no tick, so no metrics row or snapshot that would repeat the last.
            reached = (f"kimg {c.cur_nimg / 1000:.3f} >= --kimg {cfg.kimg:g}" if c.cur_nimg >= total else
                       f"{c.elapsed_s:.0f} s of training >= --budget {cfg.budget}")
            self.say(f"already at {reached}; nothing to train (pass a larger --kimg / --budget to continue)")
            return self._finish(False)
        if self.dist.is_main and self.resumed_from is None:
            self._write_start_files()
        # Said before the progress bar exists, so the line does not run into it.
        self.say(f"training on {self.data.summary()}; {self.device}, {self.dist.world} process(es), "
                 f"batch {cfg.batch}, to kimg {cfg.kimg:g}")
        self.log = RunLog(self.out_dir, total, c.cur_nimg, self.dist.is_main,
                          c.cur_nimg if self.resumed_from else None)
        try:
            with stop_on_signals(self):
                return self._loop(total)
        finally:
            self.log.close()

    def _loop(self, total: int) -> dict[str, Any]:
        c, tick_stats, tick_t0 = self.counters, TickStats(), time.time()
        while True:
            if c.cur_nimg < total:
                try:
                    self.train_step(tick_stats)
                except NonFinite as exc:
                    return self._stop_non_finite(str(exc))
                self.log.step(self.cfg.batch)
            stop = self.dist.any_flag(self.stop_signal is not None)
            # The wall budget ends the run like --kimg does: a final tick and snapshot, status done.
            done = (c.cur_nimg >= total or stop
                    or self.dist.any_flag(self._budget_spent(time.time() - tick_t0)))
            if not done and c.cur_tick != 0 and c.cur_nimg < c.tick_start_nimg + self.cfg.tick_kimg * 1000:
                continue
            now = time.time()
            c.elapsed_s += now - tick_t0
            self._tick(tick_stats, now - tick_t0, done, stop)
            tick_stats, tick_t0 = TickStats(), time.time()
            if done:
                return self._finish(stop)

    def _budget_spent(self, running_s: float) -> bool:
        """True once the training time of all sessions (plus `running_s` of this tick) reaches --budget."""
        budget = self.cfg.budget_seconds
        return budget is not None and self.counters.elapsed_s + running_s >= budget

    def train_step(self, tick_stats: TickStats) -> None:
        """One global batch through every due phase, then EMA, counters and ADA."""
        cfg, d, c = self.cfg, self.dist, self.counters
        idx = self.sampler.next_indices(cfg.batch)[d.rank :: d.world]
        real = real_batch(self.data, idx, self.device)
        if cfg.channels_last:
            real = (real[0].contiguous(memory_format=torch.channels_last), real[1])
        for phase in self.phases:
            # Drawn for every phase, due or not, so the draw sequence depends only on the step.
            z = torch.randn([cfg.batch, cfg.z_dim], generator=self.draws)[d.rank :: d.world]
            lab = torch.randint(len(self.data.labels), [cfg.batch], generator=self.draws)[d.rank :: d.world]
            if not phase.due(c.batch_idx):
                continue
            gen = (z.to(self.device), self.data.one_hot(self.data.labels[lab]).to(self.device))
            loss = self.loss_main if phase.name.endswith("main") else self.loss
            stats = run_phase(phase, loss, real, gen, self.scaler.scale, self._after_backward)
            bad = [k for k, v in stats.items() if not torch.isfinite(torch.tensor(v))]
            if d.any_flag(bool(bad)):  # every rank stops together, or the others would hang
                raise NonFinite(f"{bad[0] if bad else 'loss on another rank'} in phase {phase.name}")
            self.ada.observe(stats)
            tick_stats.add(stats)
        d.average_tracked_buffers(self.nets.G)
        update_ema(self.nets.G_ema, self.nets.G, cfg, c.cur_nimg)
        c.cur_nimg += cfg.batch
        c.batch_idx += 1
        self.ada.maybe_update(c.batch_idx, cfg.batch, d.all_reduce_sum)

    def _after_backward(self, phase) -> bool:
        self.dist.average_grads(phase.params)
        return self.scaler.unscale(phase.params)

    # --- ticks, snapshots, the end ---------------------------------------------------------
    def _tick(self, tick_stats: TickStats, tick_s: float, done: bool, stopping: bool) -> None:
        cfg, c = self.cfg, self.counters
        tick, tick_nimg = c.cur_tick, c.cur_nimg - c.tick_start_nimg
        # A signal means "save and go now": skip a metric pass that could outlast the grace period.
        metric_due = bool(cfg.metrics) and not stopping and (done or tick % cfg.metric_every == 0)
        snap_due = done or tick % cfg.snap == 0 or metric_due
        c.cur_tick, c.tick_start_nimg = tick + 1, c.cur_nimg  # the state a resume continues from
        row = {"tick": tick, "kimg": c.cur_nimg / 1000, "nimg": c.cur_nimg, "time_s": round(c.elapsed_s, 3),
               "sec_per_tick": round(tick_s, 3), "sec_per_kimg": tick_s / max(tick_nimg / 1000, 1e-9),
               **tick_stats.means(), "ada_p": self.ada.p, "r_t": self.ada.last_rt, **memory_gb(self.device)}
        if cfg.precision == "fp16":
            row["loss_scale"] = self.scaler.scale
        if metric_due and self.metrics is not None:
            values = self.metrics.evaluate(self.nets.G_ema)
            self.metric_history.append({"kimg": c.cur_nimg / 1000, **values})
            row.update(values)
        if snap_due:
            # Every rank's RNG state goes into the snapshot, so a DDP resume is exact too. The
            # snapshot is written before this tick's metrics row and fakes grid: when it fails
            # (full disk), no file of the run gets ahead of the snapshot that is kept.
            self._snapshot(metric_due, self.dist.gather_to_main(rng_state()))
        self.log.tick(row)
        self.dist.barrier()

    def _snapshot(self, with_metric: bool, rng_by_rank: list | None) -> None:
        if not self.dist.is_main:
            return
        kimg = self.counters.cur_nimg // 1000
        old_best, target = self.best, snapshot_path(self.out_dir, kimg)
        if with_metric and self.metrics is not None and self.metric_history:
            # Decided before saving so the snapshot itself carries the bookkeeping it implies.
            self.best = self.metrics.better_best(self.best, self.metric_history[-1], target)
        if self.best is not None and self.best is old_best and self.best["snapshot"] == target.name:
            self.best = preserve_best(self.out_dir, self.best)  # about to overwrite the best's file
        path = save_snapshot(self.out_dir, kimg, self._payload(rng_by_rank), self.nets.G_ema,
                             self._info(kimg))
        if self.best is not None and self.best != old_best:
            atomic_write_json(self.out_dir / "best.json", self.best)  # only once the snapshot exists
            drop_preserved(self.out_dir, old_best, self.best)
        prune_snapshots(self.out_dir, self.cfg.keep,
                        {self.best["snapshot"], path.name} if self.best else {path.name})
        # after its snapshot exists
        save_fakes(self.nets.G_ema, self.grid, self.out_dir / f"fakes{kimg:06d}.png")

    def _payload(self, rng_by_rank: list) -> dict[str, Any]:
        n = self.nets
        opt_by_net = {p.name[0]: p.opt for p in self.phases}
        return {
            "G": n.G.state_dict(), "D": n.D.state_dict(), "G_ema": n.G_ema.state_dict(),
            "G_opt": opt_by_net["G"].state_dict(), "D_opt": opt_by_net["D"].state_dict(),
            "loss": self.loss.state_dict(), "ada": self.ada.state_dict(), "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(), "draws_rng": self.draws.get_state(),
            "counters": asdict(self.counters), "metric_history": self.metric_history, "best": self.best,
            "rng": rng_by_rank[0], "rng_by_rank": rng_by_rank, "config": self.cfg.to_dict(),
            "world": self.dist.world, "manifest_hash": self.data.manifest_hash,
            "transfer": self.transfer_from,
        }

    def _info(self, kimg: int) -> dict[str, Any]:
        cfg, data = self.cfg, self.data
        return {"classes": data.generator_classes, "res": cfg.res, "channels": data.channels, "fit": data.fit,
                "kimg": kimg, "data_dir": str(cfg.data_dir), "manifest_hash": data.manifest_hash,
                "real_counts": data.real_counts, "seen_md5": data.seen_md5, "recipe": cfg.recipe,
                "stage": cfg.stage, "target_classes": list(cfg.classes), "aug": cfg.aug,
                "augpipe": cfg.augpipe, "orient": data.orient, "transfer_from": self.transfer_from}

    def _write_start_files(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out_dir / "training_options.json",
                          {**self.cfg.to_dict(), "data_summary": self.data.summary(),
                           "world": self.dist.world})
        if self.transfer_from is not None:
            atomic_write_json(self.out_dir / "transfer.json", self.transfer_from)
        save_reals(self.data, self.grid, self.out_dir / "reals.png")
        save_fakes(self.nets.G_ema, self.grid, self.out_dir / "fakes_init.png")

    def _finish(self, stopped: bool) -> dict[str, Any]:
        snaps = list_snapshots(self.out_dir) if self.dist.is_main else []
        last = snaps[-1].name if snaps else None
        if stopped:
            self.say(f"stopped by {self.stop_signal or 'a signal on another rank'} at kimg "
                     f"{self.counters.cur_nimg / 1000:.3f}; wrote {last}; "
                     f"continue with --resume {self.out_dir}")
        return {"status": "stopped" if stopped else "done", "stop_signal": self.stop_signal,
                "kimg": self.counters.cur_nimg / 1000,
                "snapshot": last, "best": self.best, "ada_p": self.ada.p}

    def _stop_non_finite(self, what: str) -> dict[str, Any]:
        snaps = list_snapshots(self.out_dir)
        kept = snaps[-1].name if snaps else "none (no snapshot was written yet)"
        raise UserError(f"training stopped at kimg {self.counters.cur_nimg / 1000:.3f}: non-finite {what}; "
                        f"the last good snapshot is kept ({kept}) — resume from it with a lower --lr/--gamma "
                        "or --precision fp32")


def train_gan(cfg: GanTrainConfig, log=print, resume: ResumePoint | None = None) -> dict[str, Any]:
    """Train (or continue) a run as configured; returns a small summary dict. `resume`: the
    snapshot of `cfg.resume` when the caller has already loaded it (else it is loaded here)."""
    trainer = Trainer(cfg, log, resume=resume)
    try:
        return trainer.run()
    finally:
        shutdown(trainer.dist)
