"""Helpers shared by the click commands of both `classify` and `gen`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

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
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} was requested but this machine has no CUDA GPU; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown --device {name!r}; use cpu, cuda, cuda:N or auto")
    return name


def cpu_native_bf16() -> bool | None:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX); None where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return None


def warn_if_slow_cpu_bf16(device: str, cpu_bf16: bool) -> None:
    """--cpu-bf16 on a CPU without native bf16 runs emulated kernels: say so, once, on stderr."""
    if cpu_bf16 and device == "cpu" and cpu_native_bf16() is False:
        click.echo("note: --cpu-bf16 on a CPU without AVX512-BF16/AMX; bf16 is emulated here and "
                   "likely slower than fp32", err=True)
