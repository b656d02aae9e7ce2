"""The generator alone as a `.safetensors` file: weights plus JSON metadata.

This is the hand-off between `gen train` and `gen sample` (and what users share). The
metadata holds the `GeneratorConfig` as a dict (so the network is rebuilt without any
code from the file) and an `info` dict: classes, res, channels, fit, kimg, data_dir,
manifest_hash and real_counts (real train images per class the generator saw — the
ablation's leak guard reads it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save
from stylegan2_ada import Generator, GeneratorConfig

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_bytes

FORMAT_VERSION = 1
SUFFIX = ".G_ema.safetensors"


def export_generator(G: torch.nn.Module, info: dict[str, Any], path: str | os.PathLike) -> None:
    """Write G's state dict and config (+ `info`) to `path` atomically."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in G.state_dict().items()}
    metadata = {
        "format": "ganbalance-generator",
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(G.config.to_dict()),
        "info": json.dumps(info),
    }
    atomic_write_bytes(path, save(state, metadata=metadata))


def read_generator_metadata(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (config dict, info dict) without loading the weights."""
    path = Path(path)
    try:
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable .safetensors generator file ({exc})") from None
    if "config" not in meta:
        raise UserError(f"{path} has no generator config in its metadata; "
                        "export it with `gen train` or `gen import-pkl`")
    try:
        version = int(meta.get("format_version", FORMAT_VERSION))
        config, info = json.loads(meta["config"]), json.loads(meta.get("info", "{}"))
    except ValueError as exc:
        raise UserError(f"{path} has damaged generator metadata ({type(exc).__name__}: {str(exc)[:120]}); "
                        "re-export it (gen train writes one per snapshot, "
                        "gen import-pkl from a .pkl)") from None
    if not isinstance(config, dict) or not isinstance(info, dict):
        raise UserError(f"{path} has damaged generator metadata (config/info are not JSON objects); "
                        "re-export it")
    if version > FORMAT_VERSION:
        raise UserError(f"{path} has format_version {version}, newer than this ganbalance "
                        f"({FORMAT_VERSION}); upgrade ganbalance")
    return config, info


def read_generator_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a generator file; a damaged file or non-finite weights are a UserError.

    NaN/inf weights (a diverged run, a broken import) would make black images that every
    filter accepts, so they are refused here, where every reader of the file passes.
    """
    path = Path(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable .safetensors generator file ({str(exc)[:160]}); "
                        "re-export it") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise UserError(f"{path} holds NaN or infinite weights ({len(bad)} tensor(s), first {bad[0]}); "
                        "the generator is broken (a diverged run?) — use an earlier snapshot")
    return state


def load_generator(
    path_or_run_dir: str | os.PathLike, which: str | int = "best", device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a generator from a `.safetensors` file or a run folder.

    In a run folder, `which` is "best" (the snapshot named in best.json, else the latest),
    "latest", or a kimg number.
    """
    path = resolve_generator_path(path_or_run_dir, which)
    config, info = read_generator_metadata(path)
    G = Generator.from_config(GeneratorConfig.from_dict(config))
    try:
        G.load_state_dict(read_generator_weights(path), strict=True)
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not match its own config ({str(exc).splitlines()[0]})") from None
    info = dict(info, generator_path=str(path))
    return G.to(device).eval().requires_grad_(False), info


def resolve_generator_path(path_or_run_dir: str | os.PathLike, which: str | int = "best") -> Path:
    """Find the generator file a user means by a file path or a run folder + `which`."""
    path = Path(path_or_run_dir)
    if path.is_file() and path.suffix == ".pt":  # gen train's resume state: its G_ema export sits beside it
        export = path.with_name(path.name[: -len(".pt")] + SUFFIX)
        if export.is_file():
            return export
        if not path.name.startswith("network-snapshot-"):
            raise UserError(f"{path} is not a generator (a classifier's model.pt?); pass a run folder from "
                            "`gen train` or a .safetensors generator")
        raise UserError(f"{path} is a training snapshot and its generator export {export.name} is missing; "
                        "pass the run folder (with --snapshot latest|best|KIMG) or a .safetensors generator")
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserError(f"{path} does not exist; "
                        "pass a run folder from `gen train` or a .safetensors generator")
    snaps = sorted(path.glob(f"network-snapshot-*{SUFFIX}"))
    if not snaps:
        hint = ("it holds training snapshots (.pt) but none of their generator exports (*" + SUFFIX + ")"
                if any(path.glob("network-snapshot-*.pt")) else "has `gen train` written a snapshot yet?")
        raise UserError(f"{path} holds no network-snapshot-*{SUFFIX}; {hint}")
    if which == "latest":
        return snaps[-1]
    if which == "best":
        best = path / "best.json"
        if best.is_file():
            name = json.loads(best.read_text()).get("snapshot")
            if name:
                cand = path / Path(name).name
                cand = (cand if cand.name.endswith(SUFFIX)
                        else cand.with_name(cand.name.replace(".pt", SUFFIX)))
                if cand.is_file():
                    return cand
        return snaps[-1]
    try:
        kimg = int(float(which))  # 1.504 (as gen train prints it) names the snapshot of kimg 1
    except (TypeError, ValueError):
        raise UserError(f"unknown snapshot {which!r}; use best, latest or a kimg number") from None
    cand = path / f"network-snapshot-{kimg:06d}{SUFFIX}"
    if not cand.is_file():
        have = ", ".join(s.name[len("network-snapshot-"):][:6] for s in snaps)
        raise UserError(f"{path} has no snapshot at kimg {kimg}; available: {have}")
    return cand
