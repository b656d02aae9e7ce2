"""Test-only: write a `.pkl` shaped like a reference StyleGAN2-ADA snapshot.

The reference pickles every network object as a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)` and its option dicts as
`dnnlib.util.EasyDict`. We reproduce that byte structure without any reference code:
stand-ins with those module/qualnames are put into `sys.modules` only while dumping,
so pickle records the same globals a real file would.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, safe_open

BUFFER_NAMES = {"resample_filter", "noise_const", "w_avg", "p"}
# If anything ever executed the embedded source, this would leave a file behind.
EVIL_SOURCE = "import pathlib\npathlib.Path({marker!r}).write_text('module_src was executed')\n"


def reconstruct_stand_in(meta: dict) -> Any:
    """Never called by the code under test; only its pickled name matters."""
    raise AssertionError("the stand-in reconstruct function must never be called")


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict (pickled under that name while dumping)."""


@contextlib.contextmanager
def reference_names() -> Iterator[None]:
    """Make the stand-ins importable as torch_utils.persistence / dnnlib.util while dumping."""
    mods = {name: types.ModuleType(name)
            for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")}
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = reconstruct_stand_in
    mods["dnnlib.util"].EasyDict = EasyDict
    saved = (reconstruct_stand_in.__module__, reconstruct_stand_in.__qualname__, EasyDict.__module__)
    reconstruct_stand_in.__module__, reconstruct_stand_in.__qualname__ = (
        "torch_utils.persistence", "_reconstruct_persistent_obj")
    EasyDict.__module__ = "dnnlib.util"
    assert not set(mods) & set(sys.modules), (
        "a real torch_utils/dnnlib is importable; the test would be ambiguous")
    sys.modules.update(mods)
    try:
        yield
    finally:
        for name in mods:
            del sys.modules[name]
        reconstruct_stand_in.__module__, reconstruct_stand_in.__qualname__, EasyDict.__module__ = saved


class FakePersistent:
    """Pickles as `_reconstruct_persistent_obj(meta)` with the reference's meta layout."""

    def __init__(self, class_name: str, state: dict, marker: Path):
        self.meta = dict(type="class", version=4, module_src=EVIL_SOURCE.format(marker=str(marker)),
                         class_name=class_name, state=state)

    def __reduce__(self):
        return reconstruct_stand_in, (self.meta,)


def module_state(params: dict, buffers: dict, children: dict, init_kwargs: dict | None = None,
                 **attrs) -> dict:
    """A `__dict__` like an nn.Module's, as the reference records it."""
    hooks = {k: OrderedDict() for k in ("_backward_hooks", "_forward_hooks", "_forward_pre_hooks",
                                        "_state_dict_hooks", "_load_state_dict_pre_hooks")}
    return dict(training=False, _parameters=OrderedDict(params), _buffers=OrderedDict(buffers),
                _non_persistent_buffers_set=set(), _modules=OrderedDict(children), _init_args=(),
                _init_kwargs=EasyDict(init_kwargs or {}), **hooks, **attrs)


def record_tree(flat: dict[str, torch.Tensor], class_name: str, marker: Path, init_kwargs: dict,
                empty_children: dict[str, list[str]] | None = None) -> FakePersistent:
    """Nest a flat state dict into records; params become Parameters, known buffers stay tensors."""
    tree: dict = {}
    for key, tensor in flat.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = tensor
    for where, names in (empty_children or {}).items():
        node = tree
        for part in where.split(".") if where else []:
            node = node[part]
        for name in names:
            node[name] = {}

    def build(node: dict, name: str, kwargs: dict) -> FakePersistent:
        params, buffers, children = {}, {}, {}
        for key, value in node.items():
            if isinstance(value, dict):
                children[key] = build(value, key, {})
            elif key in BUFFER_NAMES:
                buffers[key] = value.clone()
            else:
                params[key] = torch.nn.Parameter(value.clone(), requires_grad=False)
        return FakePersistent(name, module_state(params, buffers, children, kwargs, layer_name=name), marker)

    return build(tree, class_name, init_kwargs)


def golden(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    with safe_open(str(path), "pt") as fh:
        config = json.loads(fh.metadata()["config"])
    return load_file(str(path)), config


def split(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def reference_kwargs(cfg: dict[str, Any], g_arch: str = "skip", d_arch: str = "resnet") -> tuple[dict, dict]:
    """G and D constructor kwargs the way the reference training script passes them."""
    common = dict(c_dim=cfg["c_dim"], img_resolution=cfg["img_resolution"], img_channels=cfg["img_channels"])
    g = dict(z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], **common,
             mapping_kwargs=EasyDict(num_layers=cfg["mapping_layers"]),
             synthesis_kwargs=EasyDict(channel_base=cfg["channel_base"], channel_max=cfg["channel_max"],
                                       num_fp16_res=cfg["num_fp16_res"], conv_clamp=cfg["conv_clamp"],
                                       architecture=g_arch))
    d = dict(**common, architecture=d_arch, channel_base=cfg["channel_base"], channel_max=cfg["channel_max"],
             num_fp16_res=cfg["num_fp16_res"], conv_clamp=cfg["conv_clamp"], block_kwargs=EasyDict(),
             mapping_kwargs=EasyDict(), epilogue_kwargs=EasyDict(mbstd_group_size=cfg["mbstd_group_size"]))
    return g, d


def write_reference_pkl(golden_path: Path, out: Path, marker: Path, *, g_scale: float = 1.5,
                        g_arch: str = "skip", d_arch: str = "resnet", protocol: int = 3,
                        synthesis_kwargs: dict | None = None, mapping_kwargs: dict | None = None,
                        g_ema_scale: float = 1.0, training_set_kwargs: Any = None,
                        augment_kwargs: Any = None) -> dict[str, torch.Tensor]:
    """Write a snapshot: G_ema and D from the golden file, G = G_ema * g_scale. Returns the golden tensors.

    `synthesis_kwargs` / `mapping_kwargs` override what the G record claims (to make it lie);
    `g_ema_scale` scales G_ema's weights (NaN makes a broken generator); `training_set_kwargs` /
    `augment_kwargs` replace those values (hostile object graphs).
    """
    state, cfg = golden(golden_path)
    g_kwargs, d_kwargs = reference_kwargs(cfg, g_arch, d_arch)
    g_kwargs["synthesis_kwargs"].update(synthesis_kwargs or {})
    g_kwargs["mapping_kwargs"].update(mapping_kwargs or {})
    g_state = split(state, "G.")
    aug_kwargs = dict(xflip=1, rotate90=1, xint=1, scale=1) if augment_kwargs is None else augment_kwargs
    aug_state = module_state({}, {"p": torch.tensor(0.25)}, {}, aug_kwargs)
    data = dict(
        G=record_tree({k: v * g_scale for k, v in g_state.items()}, "Generator", marker, g_kwargs),
        D=record_tree(split(state, "D."), "Discriminator", marker, d_kwargs,
                      empty_children={"b4": ["mbstd"]}),
        G_ema=record_tree({k: v * g_ema_scale for k, v in g_state.items()}, "Generator", marker, g_kwargs),
        augment_pipe=FakePersistent("AugmentPipe", aug_state, marker),
        training_set_kwargs=EasyDict(path="/datasets/defects.zip", resolution=cfg["img_resolution"],
                                     use_labels=cfg["c_dim"] > 0, max_size=np.int64(120))
        if training_set_kwargs is None else training_set_kwargs,
    )
    with reference_names():
        out.write_bytes(pickle.dumps(data, protocol=protocol))
    return state
