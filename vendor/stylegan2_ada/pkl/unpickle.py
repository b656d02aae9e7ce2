"""A restricted unpickler for reference StyleGAN2-ADA `.pkl` checkpoints.

Those files are ordinary pickles whose network objects carry their own class source
code and are rebuilt by calling `torch_utils.persistence._reconstruct_persistent_obj`.
Loading them with `pickle.load` would import and run that code. Here nothing from the
file is imported or executed:

- `find_class` answers from a fixed allow-list and hands back *our* functions, never the
  object the file names. Anything else raises `CheckpointError` naming the global.
- The persistent-object call becomes an inert `PersistentRecord` (class name + state);
  its `module_src` is dropped unread.
- Tensors are rebuilt from the small torch-serialised storage blobs with
  `torch.load(..., weights_only=True)`, i.e. torch's own restricted loader.
- The object graph is measured once after loading (`check_graph`): shared references are
  counted as often as they are referenced, which is the work any later walk that does not
  memoise would do. A graph beyond `MAX_NODES` such nodes, nested deeper than `MAX_DEPTH`,
  or referring to itself is refused, so a small file cannot make the converters run for
  minutes ("billion laughs" of shared lists, a DAG of shared sub-module records).
- Protocols 0-2 (Python 2 era) name builtins as `__builtin__`/`copy_reg` and bytes as
  `_codecs.encode(text, "latin1")`; those names map onto the same allow-list.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch._utils import _rebuild_tensor_v2 as torch_rebuild

from stylegan2_ada.errors import CheckpointError

RECONSTRUCT = ("torch_utils.persistence", "_reconstruct_persistent_obj")
# The largest reference network pickle (1024x1024 G, D and G_ema) counts a few 10^4 nodes.
MAX_NODES = 1_000_000
# Module records nest ~6 deep and their state dicts a few more; 100 is far beyond any snapshot.
MAX_DEPTH = 100
# Python 2 module names that protocols 0-2 write (pickle's own mapping does not reach an
# overridden find_class).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


@dataclass(frozen=True, slots=True)
class PersistentRecord:
    """What a reference network object was, as data: its class name and `__dict__`.

    Frozen with slots so that a crafted BUILD opcode cannot attach attributes to it.
    """

    class_name: str
    version: Any
    state: dict


class LooseDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a dict that tolerates an (empty) BUILD state."""


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    # Only the fields we read are kept; `module_src` is deliberately never looked at.
    if not isinstance(meta, dict) or meta.get("type") != "class":
        kind = meta.get("type") if isinstance(meta, dict) else type(meta).__name__
        raise _BadFile(f"persistent object of kind {kind!r} (only network classes are supported)")
    class_name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise _BadFile("persistent object without a class_name string and a state dict")
    return PersistentRecord(class_name=class_name, version=meta.get("version"), state=state)


class _BadFile(Exception):
    """Raised inside the unpickler; turned into a CheckpointError naming the file."""


def _load_from_bytes(blob: Any,
                     loaded: dict[int, tuple[int, Any]]) -> torch.UntypedStorage | torch.TypedStorage:
    """Rebuild one storage blob; remember its address and size in `loaded` for `_validate`."""
    if not isinstance(blob, (bytes, bytearray)):
        raise _BadFile("tensor storage blob is not bytes")
    # torch's weights_only loader has its own allow-list, so the blob cannot run code either.
    storage = torch.load(io.BytesIO(bytes(blob)), map_location="cpu", weights_only=True)
    if not isinstance(storage, (torch.UntypedStorage, torch.TypedStorage)):
        raise _BadFile(f"tensor storage blob holds a {type(storage).__name__}, not a storage")
    untyped = storage._untyped_storage if isinstance(storage, torch.TypedStorage) else storage
    # Keeping the storage alive in `loaded` also stops its address being reused during the load.
    loaded[untyped.data_ptr()] = (untyped.nbytes(), untyped)
    return storage


def _is_int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) and v >= 0 for v in value)


def _check_fits(storage, offset: int, size: tuple, stride: tuple) -> None:
    """Refuse views that reach outside their storage or claim more elements than it holds.

    torch does not bounds-check a rebuilt view, so a crafted offset would read foreign
    memory; and a stride-0 view with a huge size would explode once copied.
    """
    with warnings.catch_warnings():  # the legacy blobs give TypedStorage, whose methods warn
        warnings.simplefilter("ignore", UserWarning)
        stored = storage.size() if isinstance(storage, torch.TypedStorage) else storage.nbytes()
    numel = 1
    for n in size:
        numel *= n
    if numel == 0:
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or last >= stored or numel > stored:
        raise _BadFile(f"tensor view (offset {offset}, size {list(size)}) does not fit its storage "
                       f"of {stored}")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None) -> torch.Tensor:
    if not isinstance(storage, (torch.UntypedStorage, torch.TypedStorage)):
        raise _BadFile("tensor rebuilt from something that is not a storage")
    if not (isinstance(storage_offset, int) and _is_int_tuple(size) and _is_int_tuple(stride)):
        raise _BadFile("tensor with a malformed offset, size or stride")
    if len(size) != len(stride):
        raise _BadFile("tensor whose size and stride differ in length")
    _check_fits(storage, storage_offset, size, stride)
    # Hooks and metadata from the file are dropped: a weight needs neither, and hooks are callables.
    return torch_rebuild(storage, storage_offset, size, stride, False, collections.OrderedDict())


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None) -> torch.Tensor:
    # A plain tensor is all a state dict needs; no Parameter, no hooks.
    if not isinstance(data, torch.Tensor):
        raise _BadFile("parameter rebuilt from something that is not a tensor")
    return data


def _numpy_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    # Only plain numeric dtypes: object and structured dtypes could smuggle references.
    if not isinstance(spec, str):
        raise _BadFile("numpy dtype spec is not a string")
    dtype = np.dtype(spec)
    if dtype.kind not in "biufc" or dtype.hasobject:
        raise _BadFile(f"numpy dtype {spec!r} is not a plain numeric type")
    return dtype


def _numpy_scalar(dtype: Any, data: Any = None) -> int | float | complex | bool:
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or dtype.hasobject:
        raise _BadFile("numpy scalar of a non-numeric dtype")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _BadFile("numpy scalar with a malformed payload")
    return np.frombuffer(data, dtype=dtype)[0].item()


def _latin1_bytes(text: Any, encoding: Any = "utf-8") -> bytes:
    """`_codecs.encode` as protocols 0-2 use it: bytes spelled as a latin-1 string."""
    if (not isinstance(text, str) or not isinstance(encoding, str)
            or encoding.lower() not in ("latin1", "latin-1")):
        raise _BadFile("bytes encoded other than as a latin-1 string")
    return text.encode("latin-1")


def _reconstructor(cls: Any, base: Any, state: Any) -> LooseDict:
    """`copy_reg._reconstructor` as protocols 0-1 use it for EasyDict: only that dict subclass."""
    if cls is not LooseDict or base is not dict or not isinstance(state, (dict, type(None))):
        raise _BadFile("object rebuilt by copy_reg other than an EasyDict")
    return LooseDict(state or {})


def _allowed_globals(loaded: dict[int, tuple[int, Any]]) -> dict[tuple[str, str], Any]:
    """(module, name) -> the object we hand back. Built per load: no module-level mutable state."""
    return {
        RECONSTRUCT: _reconstruct_persistent_obj,
        ("dnnlib.util", "EasyDict"): LooseDict,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): lambda blob: _load_from_bytes(blob, loaded),
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
        ("numpy", "dtype"): _numpy_dtype,
        # Protocol-3 pickles spell a set as a call of builtins.set (every module keeps
        # `_non_persistent_buffers_set`); it only builds a container of already-loaded values.
        ("builtins", "set"): set,
        # Protocols 0-2 only: bytes as latin-1 text, EasyDict through copy_reg, the dict it extends.
        ("_codecs", "encode"): _latin1_bytes,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("builtins", "dict"): dict,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` answers only from the allow-list."""

    def __init__(self, file, path: Path):
        super().__init__(file)
        self._path = path
        # Address -> (byte size, storage) of every storage this load rebuilt from a blob.
        self.loaded_storages: dict[int, tuple[int, Any]] = {}
        self._allowed = _allowed_globals(self.loaded_storages)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(_PY2_MODULES.get(module, module), name)]
        except KeyError:
            raise CheckpointError(
                f"{self._path}: refusing to load, the pickle references the global {module}.{name}, "
                "which a StyleGAN2-ADA checkpoint never needs (it could run code); "
                "only load .pkl files from sources you trust"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise _BadFile("pickle uses persistent ids, which StyleGAN2-ADA checkpoints do not")


def _check_tensor(t: torch.Tensor, loaded: dict[int, tuple[int, Any]]) -> None:
    """A tensor must view, in bounds, a storage we rebuilt from a blob, and carry no hooks.

    Needed after loading because a BUILD opcode on a tensor calls `Tensor.__setstate__`,
    which re-points it with an unchecked `set_` (that silently grows the storage into
    uninitialised memory) and can attach hooks.
    """
    if t._backward_hooks:
        raise _BadFile("tensor with backward hooks")
    if t.numel() == 0:
        return
    storage = t.untyped_storage()
    if loaded.get(storage.data_ptr(), (None,))[0] != storage.nbytes():
        raise _BadFile(f"tensor of shape {list(t.shape)} was re-pointed after it was rebuilt")
    if any(s < 0 for s in t.stride()):
        raise _BadFile("tensor with a negative stride")
    extent = t.storage_offset() + sum((n - 1) * s for n, s in zip(t.shape, t.stride())) + 1
    if max(extent, t.numel()) * t.element_size() > storage.nbytes():
        raise _BadFile(f"tensor view of shape {list(t.shape)} does not fit its storage")


def _validate(root: Any, loaded: dict[int, tuple[int, Any]]) -> None:
    """Check every tensor reachable from `root` (iteratively: the graph may be deep)."""
    stack, seen = [root], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            _check_tensor(obj, loaded)
        elif isinstance(obj, PersistentRecord):
            stack.append(obj.state)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)


_CONTAINERS = (PersistentRecord, dict, list, tuple, set, frozenset)


def _children(obj: Any) -> list:
    """What `check_graph` walks into from a container (see `_CONTAINERS`)."""
    if isinstance(obj, PersistentRecord):
        return [obj.state, obj.version]
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    return list(obj)


def _leaf_weight(obj: Any) -> int:
    # Text is copied whole by every conversion, so long strings weigh by their length.
    return 1 + len(obj) // 64 if isinstance(obj, (str, bytes, bytearray)) else 1


class GraphTooLarge(Exception):
    """`check_graph`'s refusal; `str(exc)` says what was exceeded."""


def check_graph(root: Any, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> int:
    """The graph's size with every shared reference counted as often as it occurs; raises
    `GraphTooLarge` past `max_nodes`, past `max_depth` levels, or on a cycle.

    Each container is measured once (memo by id), so the cost is linear in the distinct
    objects the file made, however many times they are referenced.
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        obj, finished = stack.pop()
        key = id(obj)
        if not isinstance(obj, _CONTAINERS):
            continue
        if finished:
            on_path.discard(key)
            total = 1 + sum(size[id(c)] if isinstance(c, _CONTAINERS) else _leaf_weight(c)
                            for c in _children(obj))
            if total > max_nodes:
                raise GraphTooLarge(f"its object graph exceeds {max_nodes} nodes once shared references are "
                                    "followed (a reference snapshot has a few 10^4)")
            size[key] = total
        elif key not in size:
            if key in on_path:
                raise GraphTooLarge("an object refers to itself")
            if len(on_path) >= max_depth:
                raise GraphTooLarge(f"objects nest deeper than {max_depth} levels")
            on_path.add(key)
            stack.append((obj, True))
            stack.extend((c, False) for c in _children(obj)
                         if isinstance(c, _CONTAINERS) and id(c) not in size)
    return size.get(id(root), _leaf_weight(root))


def safe_load_pkl(path: str | os.PathLike) -> Any:
    """Unpickle `path` with the allow-list; returns records, tensors and plain containers."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            unpickler = RestrictedUnpickler(fh, path)
            data = unpickler.load()
        check_graph(data)
        _validate(data, unpickler.loaded_storages)
        return data
    except GraphTooLarge as exc:
        raise CheckpointError(f"{path}: refusing to load, {exc}; "
                              "it is not a StyleGAN2-ADA snapshot") from None
    except CheckpointError:
        raise
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise CheckpointError(f"{path}: cannot open ({exc.strerror}); check the path") from None
    except Exception as exc:  # noqa: BLE001 - any failure while parsing untrusted bytes means a bad file
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable StyleGAN2-ADA .pkl (truncated or corrupt: {detail}); "
            "re-download or re-export it"
        ) from None
