"""Import reference StyleGAN2-ADA `.pkl` checkpoints without executing anything from them.

`load_reference_pkl(path)` unpickles with the allow-list of `pkl.unpickle`, walks the
inert network records into state dicts (keys exactly as in our networks, which share the
reference names) and maps the reference constructor kwargs onto our configs.
`networks_from_checkpoint(ckpt)` then builds our G, D and G_ema and loads them with `strict=True`.

Every walk here remembers what it has seen: a sub-module record met twice is refused (a
network never shares its layers; a DAG of shared records would multiply the work at every
level), `to_plain` converts a shared value once and stops at `MAX_PLAIN_NODES`, and weights
that are not finite (NaN/inf: a diverged run) are refused rather than imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylegan2_ada.discriminator import Discriminator
from stylegan2_ada.errors import CheckpointError
from stylegan2_ada.generator import Generator
from stylegan2_ada.pkl.configs import discriminator_config, generator_config
from stylegan2_ada.pkl.unpickle import PersistentRecord, safe_load_pkl

# Keys besides the networks that a reference snapshot may hold and that we keep as plain values.
_PLAIN_EXTRAS = ("training_set_kwargs", "progress")
# The plain extras (dataset and augmentation kwargs) hold tens of values; they are written
# into JSON, where shared references become copies, so their expanded size is bounded.
MAX_PLAIN_NODES = 10_000


@dataclass
class ReferenceCheckpoint:
    """Everything we take from a reference `.pkl`: configs, state dicts and plain extras."""

    path: Path
    G_config: Any  # GeneratorConfig
    G_ema_state: dict[str, torch.Tensor]
    G_state: dict[str, torch.Tensor] | None = None
    D_config: Any = None  # DiscriminatorConfig, None when the file has no D
    D_state: dict[str, torch.Tensor] | None = None
    augment_p: float | None = None
    augment_kwargs: dict[str, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def load_reference_pkl(path: str | os.PathLike) -> ReferenceCheckpoint:
    """Read a reference snapshot (`network-snapshot-*.pkl`) safely; see the module doc."""
    path = Path(path)
    data = safe_load_pkl(path)
    try:
        return _checkpoint_from(data, path)
    except RecursionError:
        raise CheckpointError(f"{path} nests its objects implausibly deep; "
                              "it is not a reference snapshot") from None


def _checkpoint_from(data: Any, path: Path) -> ReferenceCheckpoint:
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a StyleGAN2-ADA snapshot dict; "
                              "pass a network-snapshot-*.pkl")
    g_ema = _network_record(data, "G_ema", path, required=True)
    g_rec = _network_record(data, "G", path, required=False)
    d_rec = _network_record(data, "D", path, required=False)
    ckpt = ReferenceCheckpoint(
        path=path,
        G_config=generator_config(g_ema, path),
        G_ema_state=record_state_dict(g_ema, path),
        G_state=record_state_dict(g_rec, path) if g_rec is not None else None,
        D_config=discriminator_config(d_rec, path) if d_rec is not None else None,
        D_state=record_state_dict(d_rec, path) if d_rec is not None else None,
    )
    _read_augment_pipe(data.get("augment_pipe"), ckpt)
    ckpt.extras = {key: _plain(data[key], path) for key in _PLAIN_EXTRAS if data.get(key) is not None}
    return ckpt


def _plain(value: Any, path: Path) -> Any:
    """`to_plain` with the file named in its refusal."""
    try:
        return to_plain(value)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def _network_record(data: dict, key: str, path: Path, required: bool) -> PersistentRecord | None:
    rec = data.get(key)
    if rec is None and not required:
        return None
    if not isinstance(rec, PersistentRecord):
        names = sorted(k if isinstance(k, str) else type(k).__name__ for k in data)
        have = ", ".join(n[:40] for n in names[:12]) + (f", … ({len(names)} keys)" if len(names) > 12 else "")
        have = have or "nothing"
        raise CheckpointError(f"{path} has no {key} network (it holds: {have}); "
                              "pass a StyleGAN2-ADA network-snapshot-*.pkl")
    return rec


def record_state_dict(rec: PersistentRecord, path: Path) -> dict[str, torch.Tensor]:
    """Walk a record and its children like `nn.Module.state_dict` does: params, buffers, children.

    Iterative, each record visited once: a record that is its own descendant or the child of
    two parents is refused. Tensors must be finite.
    """
    out: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}
    stack: list[tuple[PersistentRecord, str]] = [(rec, "")]
    while stack:
        node, prefix = stack.pop()
        if id(node) in seen:
            where = seen[id(node)].rstrip(".") or node.class_name
            raise CheckpointError(f"{path}: submodule {prefix.rstrip('.') or node.class_name} is the same "
                                  f"record as {where}; a reference network never shares its layers, "
                                  "the file is not a snapshot")
        seen[id(node)] = prefix
        out.update(_own_tensors(node, prefix, path))
        children = node.state.get("_modules") or {}
        if not isinstance(children, dict):
            raise CheckpointError(f"{path}: {prefix or node.class_name} has a malformed _modules entry; "
                                  "the file is not a reference snapshot")
        for name, child in reversed(list(children.items())):  # reversed: popped in the record's order
            if child is None:
                continue
            if not isinstance(child, PersistentRecord):
                raise CheckpointError(f"{path}: submodule {prefix}{name} is a {type(child).__name__}, "
                                      "not a reference network layer")
            stack.append((child, f"{prefix}{name}."))
    return out


def _own_tensors(rec: PersistentRecord, prefix: str, path: Path) -> dict[str, torch.Tensor]:
    """One record's parameters and persistent buffers, as finite float32 tensors."""
    out: dict[str, torch.Tensor] = {}
    skip = rec.state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        tensors = rec.state.get(group, {})
        if not isinstance(tensors, dict):
            raise CheckpointError(f"{path}: {prefix or rec.class_name} has a malformed {group} entry; "
                                  "the file is not a reference snapshot")
        for name, tensor in tensors.items():
            if tensor is None or (group == "_buffers" and isinstance(skip, (set, frozenset))
                                  and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{path}: {prefix}{name} is a {type(tensor).__name__}, not a tensor; "
                                      "the file is damaged")
            value = tensor.detach().to(torch.float32).contiguous()
            if not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"{path}: {prefix}{name} holds NaN or infinite values; the snapshot "
                                      "is broken (a diverged run?) — import an earlier snapshot")
            out[prefix + str(name)] = value
    return out


def _read_augment_pipe(rec: Any, ckpt: ReferenceCheckpoint) -> None:
    """Keep the ADA probability `p` and the pipe's constructor kwargs (xflip=1, ...)."""
    if not isinstance(rec, PersistentRecord):
        return
    buffers = rec.state.get("_buffers")
    p = buffers.get("p") if isinstance(buffers, dict) else None
    if isinstance(p, torch.Tensor) and p.numel() == 1:
        ckpt.augment_p = float(p.item())
    kwargs = rec.state.get("_init_kwargs")
    if isinstance(kwargs, dict):
        ckpt.augment_kwargs = _plain(kwargs, ckpt.path)


def to_plain(obj: Any, budget: int = MAX_PLAIN_NODES) -> Any:
    """Turn what the unpickler produced into JSON-like values (dict/list/str/int/float/bool/None).

    A value referenced several times is converted once; the result's size with shared values
    counted at every reference may not exceed `budget` nodes (CheckpointError otherwise).
    """
    memo: dict[int, tuple[Any, int]] = {}

    def convert(value: Any) -> tuple[Any, int]:
        if id(value) in memo:
            return memo[id(value)]
        plain, size = _plain_node(value, convert)
        if size > budget:
            raise CheckpointError(f"a settings value of the snapshot expands to more than {budget} "
                                  "entries once its shared references are followed; the file is not a "
                                  "reference snapshot")
        memo[id(value)] = (plain, size)
        return plain, size

    return convert(obj)[0]


def _plain_node(obj: Any, convert) -> tuple[Any, int]:
    """(plain value, expanded size) of one node; `convert` handles its children."""
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj, 1
    if isinstance(obj, str):
        return obj, 1 + len(obj) // 64
    if isinstance(obj, dict):
        items = [(str(k) if isinstance(k, (str, int, float, bool)) or k is None else repr(k)[:200],
                  convert(v))
                 for k, v in obj.items()]
        return {k: v for k, (v, _) in items}, 1 + sum(n for _, (_, n) in items)
    if isinstance(obj, (list, tuple, set, frozenset)):
        parts = [convert(v) for v in obj]
        values = [v for v, _ in parts]
        if isinstance(obj, (set, frozenset)):
            values.sort(key=repr)
        return values, 1 + sum(n for _, n in parts)
    if isinstance(obj, torch.Tensor):
        # Small tensors (counters, p) are values; big ones would only be noise in a dict of extras.
        return ((obj.tolist() if obj.numel() <= 16 else f"<tensor {list(obj.shape)}>"),
                1 + min(obj.numel(), 16))
    if isinstance(obj, PersistentRecord):
        return f"<{obj.class_name}>", 1
    text = repr(obj)[:200]
    return text, 1 + len(text) // 64


def networks_from_checkpoint(ckpt: ReferenceCheckpoint, device: str | torch.device = "cpu",
                   include: tuple[str, ...] = ("G", "D", "G_ema")) -> dict[str, torch.nn.Module]:
    """Our networks with the checkpoint's weights, for the names in `include` the file holds."""
    wanted = {
        "G": (Generator, ckpt.G_config, ckpt.G_state),
        "D": (Discriminator, ckpt.D_config, ckpt.D_state),
        "G_ema": (Generator, ckpt.G_config, ckpt.G_ema_state),
    }
    nets = {}
    for name in include:
        cls, config, state = wanted[name]
        if state is not None:
            nets[name] = _loaded(cls, config, state, name, ckpt.path).to(device)
    return nets


def _loaded(cls: Any, config: Any, state: dict[str, torch.Tensor], name: str, path: Path) -> torch.nn.Module:
    net = cls.from_config(config)
    ours = net.state_dict()
    missing = sorted(set(ours) - set(state))
    extra = sorted(set(state) - set(ours))
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise CheckpointError(f"{path}: {name} does not match the network its settings describe ({detail}); "
                              "only the reference StyleGAN2-ADA networks can be imported")
    for key, tensor in state.items():
        if tensor.shape != ours[key].shape:
            raise CheckpointError(f"{path}: {name}.{key} has shape {list(tensor.shape)} but the config "
                                  f"implies {list(ours[key].shape)}; the file's settings and weights "
                                  "disagree")
    net.load_state_dict(state, strict=True)
    return net
