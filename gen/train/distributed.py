"""Multi-process training helpers (torchrun): process group, gradient and stat averaging.

We average gradients ourselves after each phase instead of wrapping G and D in
DistributedDataParallel: the loss calls G.mapping / G.synthesis / D separately and
differentiates twice for R1 and path length, which DDP's forward hooks do not follow.
One flat all-reduce per phase costs the same as DDP's bucketed one at these sizes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: str = "cpu"  # NCCL reduces only CUDA tensors

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return t
        out = t.to(self.device, copy=True)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.to(t.device)

    def average_grads(self, params: list[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def average_tracked_buffers(self, module: torch.nn.Module) -> None:
        """Average G's running w_avg over ranks. Each rank updates it from its own slice;
        the update is linear in the batch mean, so the average equals the single-process
        value for the whole global batch."""
        if self.world == 1:
            return
        for name, buf in module.named_buffers():
            if name.endswith("w_avg"):
                buf.copy_(self.all_reduce_sum(buf) / self.world)

    def any_flag(self, flag: bool) -> bool:
        """True on every rank if any rank has the flag (stop requests, non-finite losses)."""
        if self.world == 1:
            return flag
        return bool(self.all_reduce_sum(torch.tensor([float(flag)])).item() > 0)

    def gather_to_main(self, obj):
        """[obj of rank 0, obj of rank 1, ...] on rank 0 (None elsewhere); every rank must call."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def env_rank() -> tuple[int, int]:
    """(rank, world size) as set by torchrun; (0, 1) when run directly."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init_process_group(device: torch.device) -> Dist:
    """Join the process group when launched by torchrun, else a single-process Dist."""
    rank, world = env_rank()
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        # torch.optim imports torch._dynamo on first use; when that import happens after the
        # group exists, something inside torch keeps a reference to the group (torch 2.14.1),
        # so destroy_process_group() cannot join gloo's worker threads. One of them may then
        # free a finished collective's tensors while the interpreter is shutting down and abort
        # the process ("terminate called without an active exception", SIGABRT in ~1 of 3
        # CPU DDP runs). Imported first, it holds nothing and shutdown() really tears down.
        import torch._dynamo  # noqa: F401, PLC0415 — heavy (~1 s), DDP only, and before the group is the point

        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), device=str(device))


def shutdown(d: Dist) -> None:
    """Leave the process group together: a rank that tears gloo down while a peer is still
    writing its last snapshot can abort the peer ("terminate called without an active
    exception"), so every rank waits at a barrier first."""
    if d.world > 1 and dist.is_initialized():
        try:
            dist.barrier()
        except RuntimeError:
            pass  # a peer already died (its error is what the user needs to see); still clean up
        dist.destroy_process_group()
