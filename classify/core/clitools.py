"""Helpers shared by the click commands of both `classify` and `gen`."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import click
import torch

from classify.core.errors import UserError


def one_line_errors(*kinds: type[Exception]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator that turns `UserError`, the given exception `kinds` (a lower layer's own
    user-facing errors, e.g. the engine's) and a few OS errors users cause into one-line
    click errors. `classify` knows no lower layer's types, so `gen` passes the engine's here."""
    handled = (UserError, *kinds)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except handled as exc:
                raise click.ClickException(str(exc)) from None
            except FileNotFoundError as exc:
                raise click.ClickException(f"file not found: {exc.filename}") from None
            except PermissionError as exc:
                raise click.ClickException(f"permission denied: {exc.filename}") from None

        return wrapper

    return decorate


# The decorator of every `classify` command.
user_errors = one_line_errors()


def parse_device(name: str) -> str:
    """Validate --device: 'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} was requested but this machine has no CUDA GPU; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown --device {name!r}; use cpu, cuda, cuda:N or auto")
    return name


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and `taskset` set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def claim_cores() -> int:
    """Give torch one intra-op thread per core this process may use, and return the count.

    Each torch command owns the cores it runs on: two jobs that each use every core run 5-10x
    slower on a small machine. `GANBALANCE_THREADS` (or `OMP_NUM_THREADS`) sets the count by
    hand, e.g. to leave a core free or to split a box between two jobs.
    """
    wanted = os.environ.get("GANBALANCE_THREADS") or os.environ.get("OMP_NUM_THREADS")
    try:
        # torchrun starts LOCAL_WORLD_SIZE processes on this machine: they share its cores.
        n = (max(1, int(wanted)) if wanted
             else max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    except ValueError:
        raise UserError(f"GANBALANCE_THREADS/OMP_NUM_THREADS {wanted!r} "
                        "is not a whole number of threads") from None
    torch.set_num_threads(n)
    return n


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo; None where unknown (not Linux, no flags line)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def cpu_native_bf16() -> bool | None:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX); None where unknown."""
    flags = cpu_flags()
    return None if flags is None else bool(flags & {"avx512_bf16", "amx_bf16"})


def cpu_avx512() -> bool | None:
    """Whether the CPU has AVX512 (avx512f); None where unknown."""
    flags = cpu_flags()
    return None if flags is None else "avx512f" in flags


def warn_if_slow_cpu_bf16(device: str, cpu_bf16: bool, flag: str = "--cpu-bf16") -> None:
    """bf16 asked for (`flag`) on a CPU without native bf16 runs emulated kernels: say so, once,
    on stderr. Measured on such a CPU, `gen train` ran 10x slower than in fp32 (docs/BENCHMARKS.md)."""
    if cpu_bf16 and device == "cpu" and cpu_native_bf16() is False:
        click.echo(f"note: {flag} on a CPU without AVX512-BF16/AMX; bf16 is emulated here and "
                   "likely much slower than fp32", err=True)
