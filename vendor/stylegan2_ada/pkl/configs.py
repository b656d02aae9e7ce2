"""Map the constructor arguments recorded in a reference `.pkl` onto our configs.

A reference network record keeps the arguments it was built with (`_init_args`,
`_init_kwargs`, nested `mapping_kwargs` / `synthesis_kwargs` / `epilogue_kwargs`). Where
an argument is absent we use the reference default, except for layer counts, which we
count from the record's children so that they always agree with the stored weights.
Settings our networks cannot reproduce are refused with a message, never ignored.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

from stylegan2_ada.config import DiscriminatorConfig, GeneratorConfig
from stylegan2_ada.errors import CheckpointError
from stylegan2_ada.pkl.unpickle import PersistentRecord

# Positional order of the reference constructors, for files that recorded args positionally.
_G_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs",
                 "synthesis_kwargs")
_D_POSITIONAL = ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max",
                 "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs",
                 "epilogue_kwargs")


def _short(value: Any) -> str:
    """A bounded repr for messages: a hostile value may be huge or deeply nested."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 3, 60, 60
    return short.repr(value)


def init_kwargs(rec: PersistentRecord, positional: tuple[str, ...], path: Path) -> dict[str, Any]:
    """The record's constructor arguments as one dict (positional ones named)."""
    args = rec.state.get("_init_args") or ()
    kwargs = rec.state.get("_init_kwargs") or {}
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict) or len(args) > len(positional):
        raise CheckpointError(f"{path}: {rec.class_name} has malformed constructor arguments; "
                              "the file is not a reference snapshot")
    merged = dict(zip(positional, args))
    merged.update(kwargs)
    return merged


def _sub(kwargs: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    sub = kwargs.get(key) or {}
    if not isinstance(sub, dict):
        raise CheckpointError(f"{path}: {key} is a {type(sub).__name__}, not a dict; "
                              "the file is not a reference snapshot")
    return sub


def _child(rec: PersistentRecord, name: str) -> PersistentRecord | None:
    child = (rec.state.get("_modules") or {}).get(name)
    return child if isinstance(child, PersistentRecord) else None


def count_fc_layers(mapping: PersistentRecord | None) -> int:
    """Number of `fc0 … fcN` children of a mapping record (its `num_layers`)."""
    if mapping is None:
        return 0
    names = (mapping.state.get("_modules") or {}).keys()
    return sum(1 for n in names if isinstance(n, str) and n.startswith("fc") and n[2:].isdigit())


def mapping_layers(rec: PersistentRecord, mapping_kwargs: dict[str, Any], path: Path) -> int:
    """Mapping depth from the weights; the recorded `num_layers` must agree with them."""
    mapping = _child(rec, "mapping")
    stated = mapping_kwargs.get("num_layers")
    if mapping is None:
        # An unconditional D has no mapping network; the value is then unused, keep the default.
        return int(stated) if isinstance(stated, int) else 8
    counted = count_fc_layers(mapping)
    if stated is not None and stated != counted:
        raise CheckpointError(f"{path}: {rec.class_name} says num_layers={_short(stated)} but its mapping "
                              f"has {counted} layers; the file is inconsistent")
    return counted


def _require(value: Any, allowed: tuple, what: str, path: Path, hint: str) -> None:
    if value not in allowed:
        raise CheckpointError(f"{path}: {what} is {_short(value)}; ganbalance supports only {allowed[0]!r} "
                              f"({hint})")


def _check_common(kw: dict[str, Any], path: Path, net: str) -> None:
    # Settings that change the computation in ways our networks do not parametrise.
    _require(kw.get("activation", "lrelu"), ("lrelu",), f"{net} activation", path, "the reference default")
    rf = kw.get("resample_filter", [1, 3, 3, 1])
    _require(list(rf) if isinstance(rf, (list, tuple)) else rf, ([1, 3, 3, 1],), f"{net} resample_filter",
             path, "the reference default")


def generator_values(rec: PersistentRecord, path: Path) -> dict[str, Any]:
    """Reference G (or G_ema) settings under the reference's own names, defaults filled in."""
    kw = init_kwargs(rec, _G_POSITIONAL, path)
    mk, sk = _sub(kw, "mapping_kwargs", path), _sub(kw, "synthesis_kwargs", path)
    _require(sk.get("architecture", "skip"), ("skip",), "the generator architecture", path,
             "convert or retrain with --cfg using architecture='skip'")
    _check_common(sk, path, "synthesis")
    _check_common(mk, path, "mapping")
    values = {key: kw.get(key) for key in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
    missing = [k for k, v in values.items() if not isinstance(v, int)]
    if missing:
        raise CheckpointError(f"{path}: the generator record lacks {', '.join(missing)}; "
                              "the file is not a reference snapshot")
    for key in ("embed_features", "layer_features"):
        if mk.get(key) not in (None, values["w_dim"]):
            raise CheckpointError(f"{path}: mapping {key}={_short(mk[key])} differs from "
                                  f"w_dim={values['w_dim']}; not supported")
    values.update(
        mapping_layers=mapping_layers(rec, mk, path),
        mapping_lr_mul=float(mk.get("lr_multiplier", 0.01)),
        w_avg_beta=float(mk.get("w_avg_beta", 0.995)),
        channel_base=int(sk.get("channel_base", 32768)),
        channel_max=int(sk.get("channel_max", 512)),
        num_fp16_res=int(sk.get("num_fp16_res", 0)),
        conv_clamp=sk.get("conv_clamp"),
    )
    return values


def discriminator_values(rec: PersistentRecord, path: Path) -> dict[str, Any]:
    """Reference D settings under the reference's own names, defaults filled in."""
    kw = init_kwargs(rec, _D_POSITIONAL, path)
    _require(kw.get("architecture", "resnet"), ("resnet",), "the discriminator architecture", path,
             "retrain the reference with the default D architecture")
    bk, mk, ek = (_sub(kw, key, path) for key in ("block_kwargs", "mapping_kwargs", "epilogue_kwargs"))
    _check_common(bk, path, "discriminator block")
    _check_common(mk, path, "discriminator mapping")
    values = {key: kw.get(key) for key in ("c_dim", "img_resolution", "img_channels")}
    missing = [k for k, v in values.items() if not isinstance(v, int)]
    if missing:
        raise CheckpointError(f"{path}: the discriminator record lacks {', '.join(missing)}; "
                              "the file is not a reference snapshot")
    values.update(
        channel_base=int(kw.get("channel_base", 32768)),
        channel_max=int(kw.get("channel_max", 512)),
        num_fp16_res=int(kw.get("num_fp16_res", 0)),
        conv_clamp=kw.get("conv_clamp"),
        cmap_dim=kw.get("cmap_dim"),
        mapping_layers=mapping_layers(rec, mk, path),
        mapping_lr_mul=float(mk.get("lr_multiplier", 0.01)),
        mbstd_group_size=int(ek.get("mbstd_group_size", 4)),
        mbstd_num_channels=int(ek.get("mbstd_num_channels", 1)),
    )
    return values


def generator_config(rec: PersistentRecord, path: Path) -> Any:
    """Our `GeneratorConfig` for a reference G record."""
    return _to_config(GeneratorConfig, _values(generator_values, rec, path, "generator"), path, "generator")


def discriminator_config(rec: PersistentRecord, path: Path) -> Any:
    """Our `DiscriminatorConfig` for a reference D record."""
    return _to_config(DiscriminatorConfig, _values(discriminator_values, rec, path, "discriminator"), path,
                      "discriminator")


def _values(read, rec: PersistentRecord, path: Path, what: str) -> dict[str, Any]:
    """`read(rec, path)`, with a setting of the wrong type (a list where a number belongs) as a
    CheckpointError."""
    try:
        return read(rec, path)
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:  # e.g. a list where a dict belongs
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: the {what} record holds a malformed setting ({str(exc)[:160]}); "
                              "the file is not a reference snapshot") from None


def _to_config(cls: Any, values: dict[str, Any], path: Path, what: str) -> Any:
    try:
        return cls.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the {what} settings cannot be built here "
                              f"({str(exc)[:160]})") from None
