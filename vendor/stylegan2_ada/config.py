"""Typed configs of the generator and discriminator, round-tripping through plain dicts.

Field defaults follow the reference networks (512-wide, 8 mapping layers, conv_clamp 256 as in
cfg `auto`); the `gen` presets override them. Validation happens at construction, so a bad
value is reported where the user typed it, not deep inside a forward pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from .errors import EngineError

MIN_RESOLUTION = 4
MAX_RESOLUTION = 1024
# Read-only: the reduced-precision dtypes a config may name.
FP16_DTYPES = MappingProxyType({"float16": torch.float16, "bfloat16": torch.bfloat16})


def check_resolution(res: Any, what: str = "img_resolution") -> int:
    """Return `res` if it is a power of two in [4, 1024], else raise a one-line EngineError."""
    if isinstance(res, bool) or not isinstance(res, int):
        raise EngineError(f"{what} must be an integer, got {res!r}")
    if res < MIN_RESOLUTION or res > MAX_RESOLUTION or res & (res - 1) != 0:
        raise EngineError(
            f"{what} {res} is not a power of two between {MIN_RESOLUTION} and {MAX_RESOLUTION}; "
            "use e.g. 32, 64, 128, 256"
        )
    return res


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution: min(channel_base // res, channel_max), at least 1."""
    return max(min(channel_base // res, channel_max), 1)


def fp16_min_resolution(img_resolution: int, num_fp16_res: int) -> int:
    """Lowest resolution that runs in reduced precision: the top `num_fp16_res` ones, never b4."""
    log2 = img_resolution.bit_length() - 1
    return max(2 ** (log2 + 1 - num_fp16_res), 8)


def _check_int(obj: Any, name: str, minimum: int) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise EngineError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_common(obj: Any) -> None:
    """Checks shared by both configs."""
    check_resolution(obj.img_resolution)
    for name, minimum in [
        ("c_dim", 0),
        ("img_channels", 1),
        ("channel_base", 1),
        ("channel_max", 1),
        ("mapping_layers", 1),
        ("num_fp16_res", 0),
    ]:
        _check_int(obj, name, minimum)
    if obj.conv_clamp is not None and not (isinstance(obj.conv_clamp, (int, float)) and obj.conv_clamp > 0):
        raise EngineError(f"conv_clamp must be a positive number or None, got {obj.conv_clamp!r}")
    if obj.fp16_dtype not in FP16_DTYPES:
        raise EngineError(f"fp16_dtype must be one of {sorted(FP16_DTYPES)}, got {obj.fp16_dtype!r}")


def _from_dict(cls: type, d: Mapping[str, Any]) -> Any:
    """Build a dataclass from a plain dict; unknown keys are a clear error, missing = default."""
    if not isinstance(d, Mapping):
        raise EngineError(f"{cls.__name__}.from_dict expects a dict, got {type(d).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise EngineError(f"{cls.__name__}: unknown key(s) {unknown}; valid keys are {names}")
    return cls(**dict(d))


@dataclass
class GeneratorConfig:
    """Everything needed to build a `Generator` (mapping + skip-architecture synthesis)."""

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    img_resolution: int = 256
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    w_avg_beta: float = 0.995
    conv_clamp: float | None = 256
    num_fp16_res: int = 0
    fp16_dtype: str = "float16"
    channels_last: bool = False

    def __post_init__(self) -> None:
        _check_common(self)
        _check_int(self, "z_dim", 1)
        _check_int(self, "w_dim", 1)
        if not 0.0 <= float(self.w_avg_beta) <= 1.0:
            raise EngineError(f"w_avg_beta must be in [0, 1], got {self.w_avg_beta!r}")

    @property
    def num_ws(self) -> int:
        """Number of per-layer w vectors the synthesis consumes: 2 * log2(R) - 2."""
        return 2 * (self.img_resolution.bit_length() - 1) - 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GeneratorConfig:
        return _from_dict(cls, d)


@dataclass
class DiscriminatorConfig:
    """Everything needed to build a resnet `Discriminator` with mbstd and projection conditioning.

    `cmap_dim=None` means "channels at resolution 4", as in the reference.
    `mbstd_num_channels=0` disables the minibatch-stddev layer.
    """

    c_dim: int = 0
    img_resolution: int = 256
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    cmap_dim: int | None = None
    conv_clamp: float | None = 256
    num_fp16_res: int = 0
    fp16_dtype: str = "float16"
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    channels_last: bool = False

    def __post_init__(self) -> None:
        _check_common(self)
        _check_int(self, "mbstd_group_size", 1)
        _check_int(self, "mbstd_num_channels", 0)
        if self.cmap_dim is not None:
            _check_int(self, "cmap_dim", 1)

    def resolved_cmap_dim(self) -> int:
        """Width of the conditioning projection: 0 when unconditional, else cmap_dim or ch(4)."""
        if self.c_dim == 0:
            return 0
        if self.cmap_dim is not None:
            return self.cmap_dim
        return channels_at(4, self.channel_base, self.channel_max)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DiscriminatorConfig:
        return _from_dict(cls, d)
