"""The inspection engine: one shape-only pass over a model, no weights or activations touched.

How it works. The model's own ``forward`` runs once on a **meta** tensor (shape and dtype, no
storage) under a :class:`~torch.overrides.TorchFunctionMode`. Every torch call is seen by the mode:

* the layer ops -- convolution, transposed convolution, linear, batch/layer/group norm, pooling,
  activations, dropout -- are *not executed*: a shape rule gives the output shape and an empty meta
  tensor is returned (this is what makes the pass fast: PyTorch's meta kernels for convolution,
  batch norm and pooling are Python code and slower than a real CPU forward of ResNet-50);
* everything else (``+``, ``*``, ``cat``, ``view``, ``transpose``, ``flatten``, indexing...) runs
  on the meta tensors, which costs microseconds and keeps arbitrary glue code working.

Parameters are only asked for their ``shape``, so a model instance with real weights is inspected
without reading them, and a model built by name is built on the meta device (no allocation).
Module pre/post hooks attribute each op to the module stack, which gives the per-layer rows.

Counted per op (batch size 1):

* **MACs** -- one multiply-add = 1 MAC (FLOPs = 2 x MACs), counted for convolution
  (``out_numel * C_in/groups * prod(kernel)``), transposed convolution
  (``in_numel * C_out/groups * prod(kernel)``), linear and matmul. This is the convention of
  torchvision's published "GFLOPS" column and of fvcore's conv/linear counts.
* **other ops** -- everything that is not a MAC, one per output element: batch norm (a fused
  scale-and-shift), activations, elementwise add/mul; pooling counts one op per window element.
* **receptive field** -- analytic, per Araujo, Norris & Sim, "Computing Receptive Fields of
  Convolutional Neural Networks", Distill 2019: for a layer with kernel ``k``, dilation ``d``
  (effective kernel ``k' = d(k-1)+1``), stride ``s``, padding ``p`` on an input whose units have
  receptive field ``r``, jump (effective stride) ``j`` and first-unit centre ``c``::

      r_out = r + (k' - 1) * j        j_out = j * s        c_out = c + ((k' - 1)/2 - p) * j

  Where paths merge (residual add, Inception / DenseNet concat, DPN's dual path) the region is the
  union over the paths, so its size is the largest over the paths for aligned branches.
  Convention: a gate whose spatial size is 1 broadcast over a larger map (squeeze-and-excitation)
  does not widen the receptive field; the column reports the convolutional (local) field.
  Flattening or global pooling makes each output see the whole span ``r + (n - 1) * j``.
* **peak activation memory** -- inference with tensors freed after their last use: the largest
  sum of live activation bytes (input included, views and in-place results not double-counted).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode

__all__ = ["Geo", "OpRecord", "CallRecord", "Trace", "trace_module"]


@dataclass(frozen=True, slots=True)
class Geo:
    """Receptive-field state of a tensor, one entry per spatial dim (H, W for 2-d maps).

    ``rf``: receptive-field size in input pixels; ``jump``: distance in input pixels between
    adjacent units (effective stride); ``start``: centre of unit 0's field in input coordinates;
    ``spatial``: False once the spatial dims were reduced away (flatten, global pooling).
    """

    rf: tuple[float, ...]
    jump: tuple[float, ...]
    start: tuple[float, ...]
    spatial: bool = True

    def collapse(self, size: Sequence[int]) -> Geo:
        """Every unit sees all ``size`` positions: the union of their fields."""
        rf = tuple(r + (n - 1) * j for r, j, n in zip(self.rf, self.jump, size))
        start = tuple(c + (n - 1) * j / 2 for c, j, n in zip(self.start, self.jump, size))
        jump = tuple(j * n for j, n in zip(self.jump, size))
        return Geo(rf, jump, start, False)


@dataclass(slots=True)
class OpRecord:
    """One executed op (kind is the function name, e.g. ``conv2d``, ``add``)."""

    kind: str
    macs: int
    other: int
    call: int  # index of the innermost module call, -1 at top level


@dataclass(slots=True)
class CallRecord:
    """One module call: its position in the module tree and what its ops added up to."""

    module: nn.Module
    name: str
    depth: int
    index: int
    input_shape: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    output_dtype: torch.dtype | None = None
    geo: Geo | None = None
    macs: int = 0
    other: int = 0
    ops: int = 0
    is_leaf: bool = True


@dataclass
class Trace:
    """What one pass produced: module calls in execution order, op list, memory, output."""

    calls: list[CallRecord]
    ops: list[OpRecord]
    output_shape: tuple[int, ...] | None
    output_geo: Geo | None
    peak_activation_bytes: int
    max_rf: tuple[float, ...] | None
    total_macs: int
    total_other: int
    notes: list[str] = field(default_factory=list)
    modules: list[nn.Module] = field(default_factory=list)  # model.modules(), walked once here


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _ntuple(v: Any, n: int) -> tuple:
    if isinstance(v, int | float):
        return (v,) * n
    v = tuple(v)
    return v * n if len(v) == 1 and n > 1 else v


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    if ceil:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p:  # last window must start inside the input or left padding
            out -= 1
    else:
        out = span // s + 1
    return out


class _Tracer(TorchFunctionMode):
    """Torch-function mode that runs shape rules for layer ops and meta kernels for the glue."""

    def __init__(self, names: dict[int, str], batch_dtype: torch.dtype) -> None:
        super().__init__()
        self.names = names
        self.calls: list[CallRecord] = []
        self.stack: list[CallRecord] = []
        self.ops: list[OpRecord] = []
        self.geo: dict[int, Geo] = {}
        self.keep: list[torch.Tensor] = []  # keeps ids unique while the pass runs
        # memory bookkeeping: storage key -> [bytes, alloc_op, last_use_op]
        self.storage: dict[int, list[int]] = {}
        self.key_of: dict[int, int] = {}
        # shape and dtype of every tensor an op produced, recorded inside the mode's handler where
        # reading them is free: the module hooks run under the mode, where each ``x.shape`` or
        # ``x.dtype`` is a Python ``__torch_function__`` round trip (70% of a DenseNet's dispatches)
        self.meta: dict[int, tuple[tuple[int, ...], torch.dtype]] = {}
        self.max_rf: tuple[float, ...] | None = None
        self.dtype = batch_dtype
        self.thread = threading.get_ident()
        self.root: nn.Module | None = None

    # --- module stack -------------------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        if module is self.root or threading.get_ident() != self.thread:
            return
        depth = len(self.stack) + 1
        if self.stack:
            self.stack[-1].is_leaf = False
        name = self.names.get(id(module))
        if name is None:  # built during forward, e.g. ``self.classifier[:-1]``: name it by its children
            kids = [self.names.get(id(c), "") for c in module.children()]
            parents = {k.rpartition(".")[0] for k in kids}
            name = f"{parents.pop()}[...]" if len(parents) == 1 and kids[0] else type(module).__name__
        rec = CallRecord(module, name, depth, len(self.calls))
        x = args[0] if args and isinstance(args[0], torch.Tensor) else _first_tensor(args)
        if x is not None:
            m = self.meta.get(id(x))
            rec.input_shape = m[0] if m is not None else tuple(x.shape)
        self.calls.append(rec)
        self.stack.append(rec)

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        if threading.get_ident() != self.thread or not self.stack or self.stack[-1].module is not module:
            return
        rec = self.stack.pop()
        y = output if isinstance(output, torch.Tensor) else _first_tensor(output)
        if y is not None:
            m = self.meta.get(id(y))
            if m is None:
                m = (tuple(y.shape), y.dtype)
            rec.output_shape, rec.output_dtype = m
            rec.geo = self.geo.get(id(y))

    # --- bookkeeping --------------------------------------------------------------------------
    def add_input(self, x: torch.Tensor, geo: Geo) -> None:
        self.keep.append(x)
        self.geo[id(x)] = geo
        self.storage[id(x)] = [x.numel() * x.element_size(), -1, -1]
        self.key_of[id(x)] = id(x)
        self.meta[id(x)] = (tuple(x.shape), x.dtype)

    def record(self, kind: str, inputs: Sequence[torch.Tensor], out: torch.Tensor | None,
               geo: Geo | None, macs: int = 0, other: int = 0) -> None:
        idx = len(self.ops)
        self.ops.append(OpRecord(kind, macs, other, self.stack[-1].index if self.stack else -1))
        for c in self.stack:
            c.macs += macs
            c.other += other
            c.ops += 1
        for t in inputs:
            key = self.key_of.get(id(t))
            if key is not None:
                self.storage[key][2] = idx
        if out is None:
            return
        oid = id(out)
        self.meta[oid] = (tuple(out.shape), out.dtype)
        if oid not in self.key_of:
            base = out._base
            key = self.key_of.get(id(base)) if base is not None else None
            if key is None:  # a fresh allocation
                key = oid
                self.storage[key] = [out.numel() * out.element_size(), idx, idx]
            self.key_of[oid] = key
            self.keep.append(out)
        if geo is not None:
            self.geo[oid] = geo
            if geo.spatial and (self.max_rf is None or sum(geo.rf) > sum(self.max_rf)):
                self.max_rf = geo.rf

    def peak_bytes(self, outputs: Sequence[torch.Tensor]) -> int:
        n = len(self.ops) + 2
        delta = [0] * (n + 3)
        end = n - 1
        for t in outputs:
            key = self.key_of.get(id(t))
            if key is not None:
                self.storage[key][2] = end
        for size, start, last in self.storage.values():
            delta[start + 1] += size
            delta[max(last, start) + 2] -= size
        peak = live = 0
        for d in delta:
            live += d
            peak = max(peak, live)
        return peak

    # --- geometry -----------------------------------------------------------------------------
    def merged_geo(self, tensors: Sequence[torch.Tensor], out_shape: Sequence[int]) -> Geo | None:
        """Geometry of a generic op's output from its inputs' (union over aligned inputs)."""
        best: Geo | None = None
        src_shape: tuple[int, ...] | None = None
        for t in tensors:
            g = self.geo.get(id(t))
            if g is None:
                continue
            if not g.spatial:
                if best is None:
                    best = g
                continue
            k = len(g.rf)
            spatial = tuple(t.shape[-k:]) if t.dim() >= k else ()
            if len(out_shape) >= k and tuple(out_shape[-k:]) == spatial:
                best = g if best is None or not best.spatial else _union(best, g)
                src_shape = spatial
            elif all(n == 1 for n in spatial) and len(out_shape) >= k and any(
                    n > 1 for n in out_shape[-k:]):
                continue  # a broadcast 1x1 gate (SE): does not widen the field
            elif best is None or not best.spatial or src_shape is None:
                # spatial dims reshaped away or reduced: every unit sees all positions
                collapsed = g.collapse(spatial if len(spatial) == k else (1,) * k)
                if best is None:
                    best = collapsed
        return best

    # --- the mode -----------------------------------------------------------------------------
    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None):
        kwargs = kwargs or {}
        if func in _PASSTHROUGH:
            return func(*args, **kwargs)
        if threading.get_ident() != self.thread:
            return func(*args, **kwargs)
        rule = _RULES.get(func)
        if rule is not None:
            x = args[0] if args else kwargs.get("input", kwargs.get("tensors"))
            if isinstance(x, torch.Tensor) or rule is _cat:
                return rule(self, x, args, kwargs)
        args, kwargs = _to_meta(args), _to_meta(kwargs)
        out = func(*args, **kwargs)
        tensors = [t for t in _iter_tensors((args, kwargs))]
        if not tensors:
            return out
        outs = [out] if isinstance(out, torch.Tensor) else list(_iter_tensors(out))
        kind = getattr(func, "__name__", str(func)).strip("_")
        if not outs:
            return out
        elementwise = kind.rstrip("_") in _ELEMENTWISE
        for i, o in enumerate(outs):
            geo = self.merged_geo(tensors, o.shape)
            other = o.numel() if (elementwise and i == 0) else 0
            self.record(kind, tensors if i == 0 else (), o, geo, other=other)
        return out


def _union(a: Geo, b: Geo) -> Geo:
    """Union of two aligned fields (same jump): Araujo et al.'s "largest over the paths"."""
    rf, start = [], []
    for ra, ca, rb, cb in zip(a.rf, a.start, b.rf, b.start):
        lo = min(ca - (ra - 1) / 2, cb - (rb - 1) / 2)
        hi = max(ca + (ra - 1) / 2, cb + (rb - 1) / 2)
        rf.append(hi - lo + 1)
        start.append((lo + hi) / 2)
    jump = tuple(min(x, y) for x, y in zip(a.jump, b.jump))
    return Geo(tuple(rf), jump, tuple(start), True)


def _first_tensor(obj: Any) -> torch.Tensor | None:
    for t in _iter_tensors(obj):
        return t
    return None


def _iter_tensors(obj: Any):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, list | tuple):
        for o in obj:
            yield from _iter_tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _iter_tensors(o)


def _to_meta(obj: Any) -> Any:
    """Real tensors (parameters, buffers, constants) met by glue ops become meta stand-ins."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.is_meta else obj.to("meta")
    if isinstance(obj, tuple):
        return tuple(_to_meta(o) for o in obj)
    if isinstance(obj, list):
        return [_to_meta(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _to_meta(v) for k, v in obj.items()}
    return obj


def _empty(shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    return torch.empty(tuple(shape), device="meta", dtype=like.dtype)


# --- shape rules -------------------------------------------------------------------------------

def _conv_like(tr: _Tracer, x: torch.Tensor, kind: str, k: tuple, s: tuple, p: tuple, d: tuple,
               out_spatial: tuple, channels: int, macs: int, other: int, extra: Any = None):
    n = len(k)
    out = _empty((*x.shape[:-n], *out_spatial) if channels < 0 else (*x.shape[:-n - 1], channels, *out_spatial), x)
    g = tr.geo.get(id(x))
    geo = None
    if g is not None and g.spatial and len(g.rf) == n:
        rf, jump, start = [], [], []
        for r, j, c, ki, si, pi, di in zip(g.rf, g.jump, g.start, k, s, p, d):
            ke = di * (ki - 1) + 1
            rf.append(r + (ke - 1) * j)
            jump.append(j * si)
            start.append(c + ((ke - 1) / 2 - pi) * j)
        geo = Geo(tuple(rf), tuple(jump), tuple(start), True)
    elif g is not None:
        geo = g
    tr.record(kind, (x,), out, geo, macs=macs, other=other)
    return out


def _conv(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
    w = _arg(args, kwargs, 1, "weight")
    n = w.dim() - 2
    s = _ntuple(_arg(args, kwargs, 3, "stride", 1), n)
    pad = _arg(args, kwargs, 4, "padding", 0)
    d = _ntuple(_arg(args, kwargs, 5, "dilation", 1), n)
    groups = _arg(args, kwargs, 6, "groups", 1)
    k = tuple(w.shape[2:])
    cin = x.shape[-n - 1]
    if cin != w.shape[1] * groups:
        raise RuntimeError(f"conv expects {w.shape[1] * groups} input channels, got {cin} "
                           f"(input shape {tuple(x.shape)})")
    if isinstance(pad, str):
        if pad == "valid":
            p = (0,) * n
        else:  # "same": total d(k-1), left half rounded down (PyTorch's convention)
            p = tuple((di * (ki - 1)) // 2 for ki, di in zip(k, d))
    else:
        p = _ntuple(pad, n)
    if isinstance(pad, str) and pad == "same":
        out_sp = tuple(x.shape[-n:])
    else:
        out_sp = tuple(_pool_out(sz, ki, si, pi, di, False)
                       for sz, ki, si, pi, di in zip(x.shape[-n:], k, s, p, d))
    _check_positive(out_sp, x, "conv")
    cout = w.shape[0]
    out_numel = math.prod(x.shape[:-n - 1]) * cout * math.prod(out_sp)
    macs = out_numel * w.shape[1] * math.prod(k)
    return _conv_like(tr, x, f"conv{n}d", k, s, p, d, out_sp, cout, macs, 0)


def _conv_transpose(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
    w = _arg(args, kwargs, 1, "weight")
    n = w.dim() - 2
    s = _ntuple(_arg(args, kwargs, 3, "stride", 1), n)
    p = _ntuple(_arg(args, kwargs, 4, "padding", 0), n)
    op = _ntuple(_arg(args, kwargs, 5, "output_padding", 0), n)
    groups = _arg(args, kwargs, 6, "groups", 1)
    d = _ntuple(_arg(args, kwargs, 7, "dilation", 1), n)
    k = tuple(w.shape[2:])
    cout = w.shape[1] * groups
    out_sp = tuple((sz - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
                   for sz, ki, si, pi, di, oi in zip(x.shape[-n:], k, s, p, d, op))
    _check_positive(out_sp, x, "conv_transpose")
    macs = x.numel() * w.shape[1] * math.prod(k)
    out = _empty((*x.shape[:-n - 1], cout, *out_sp), x)
    g = tr.geo.get(id(x))
    geo = None
    if g is not None and g.spatial and len(g.rf) == n:
        # an output unit is touched by ceil(k'/s) input units spaced j apart; units are j/s apart
        rf = tuple(r + (math.ceil((di * (ki - 1) + 1) / si) - 1) * j
                   for r, j, ki, si, di in zip(g.rf, g.jump, k, s, d))
        jump = tuple(j / si for j, si in zip(g.jump, s))
        start = tuple(c - (pi - (di * (ki - 1)) / 2) * j / si
                      for c, j, ki, si, pi, di in zip(g.start, g.jump, k, s, p, d))
        geo = Geo(rf, jump, start, True)
    elif g is not None:
        geo = g
    tr.record(f"conv_transpose{n}d", (x,), out, geo, macs=macs)
    return out


def _linear(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
    w = _arg(args, kwargs, 1, "weight")
    if x.shape[-1] != w.shape[1]:
        raise RuntimeError(f"linear expects {w.shape[1]} input features, got {x.shape[-1]} "
                           f"(input shape {tuple(x.shape)})")
    out = _empty((*x.shape[:-1], w.shape[0]), x)
    tr.record("linear", (x,), out, tr.merged_geo((x,), out.shape), macs=out.numel() * w.shape[1])
    return out


def _addmm(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
    a, b = _arg(args, kwargs, 1, "mat1"), _arg(args, kwargs, 2, "mat2")
    out = _empty((a.shape[0], b.shape[1]), a)
    tr.record("addmm", (x, a), out, tr.merged_geo((a,), out.shape), macs=out.numel() * a.shape[1])
    return out


def _matmul(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
    other = _arg(args, kwargs, 1, "other")
    a, b = _to_meta(x), _to_meta(other)
    out = torch.matmul(a, b)
    inner = a.shape[-1]
    tr.record("matmul", (x, other), out, tr.merged_geo((x, other), out.shape), macs=out.numel() * inner)
    return out


def _same_shape(kind: str, inplace_pos: int | None, ops_per_elem: int = 1):
    def rule(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
        inplace = False
        if inplace_pos is not None:
            inplace = bool(_arg(args, kwargs, inplace_pos, "inplace", False))
        out = x if inplace else _empty(x.shape, x)
        tr.record(kind, (x,), out, tr.geo.get(id(x)), other=ops_per_elem * x.numel())
        return out
    return rule


def _inplace_same_shape(kind: str):
    def rule(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
        tr.record(kind, (x,), x, tr.geo.get(id(x)), other=x.numel())
        return x
    return rule


def _dropout(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
    training = _arg(args, kwargs, 2, "training", True)
    inplace = _arg(args, kwargs, 3, "inplace", False)
    out = x if (inplace or not training) else _empty(x.shape, x)
    tr.record("dropout", (x,), out, tr.geo.get(id(x)), other=x.numel() if training else 0)
    return out


def _pool(n: int, kind: str, max_pool: bool):
    def rule(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
        k = _ntuple(_arg(args, kwargs, 1, "kernel_size"), n)
        stride = _arg(args, kwargs, 2, "stride", None)
        s = k if stride is None or (isinstance(stride, list | tuple) and len(stride) == 0) else _ntuple(stride, n)
        p = _ntuple(_arg(args, kwargs, 3, "padding", 0), n)
        if max_pool:
            d = _ntuple(_arg(args, kwargs, 4, "dilation", 1), n)
            ceil = bool(_arg(args, kwargs, 5, "ceil_mode", False))
            ret_idx = bool(_arg(args, kwargs, 6, "return_indices", False))
        else:
            d = (1,) * n
            ceil = bool(_arg(args, kwargs, 4, "ceil_mode", False))
            ret_idx = False
        out_sp = tuple(_pool_out(sz, ki, si, pi, di, ceil)
                       for sz, ki, si, pi, di in zip(x.shape[-n:], k, s, p, d))
        _check_positive(out_sp, x, kind)
        numel = math.prod(x.shape[:-n]) * math.prod(out_sp)
        out = _conv_like(tr, x, kind, k, s, p, d, out_sp, -1, 0, numel * math.prod(k))
        if ret_idx:
            return out, torch.empty(out.shape, device="meta", dtype=torch.long)
        return out
    return rule


def _adaptive_pool(n: int, kind: str):
    def rule(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
        osz = _ntuple(_arg(args, kwargs, 1, "output_size"), n)
        ret_idx = bool(_arg(args, kwargs, 2, "return_indices", False)) if "max" in kind else False
        in_sp = tuple(x.shape[-n:])
        out_sp = tuple(i if o is None else o for i, o in zip(in_sp, osz))
        g = tr.geo.get(id(x))
        out = _empty((*x.shape[:-n], *out_sp), x)
        geo = g
        if g is not None and g.spatial and len(g.rf) == n:
            if all(o == 1 for o in out_sp):
                geo = g.collapse(in_sp)  # global pooling: each output sees every position
            else:
                # PyTorch's windows: [floor(i*I/O), ceil((i+1)*I/O)); largest window and mean step
                ks = tuple(max(math.ceil((i + 1) * a / b) - (i * a) // b for i in range(b))
                           for a, b in zip(in_sp, out_sp))
                rf = tuple(r + (kk - 1) * j for r, j, kk in zip(g.rf, g.jump, ks))
                jump = tuple(j * a / b for j, a, b in zip(g.jump, in_sp, out_sp))
                start = tuple(c + (kk - 1) / 2 * j for c, j, kk in zip(g.start, g.jump, ks))
                geo = Geo(rf, jump, start, True)
        tr.record(kind, (x,), out, geo, other=x.numel())
        if ret_idx:
            return out, torch.empty(out.shape, device="meta", dtype=torch.long)
        return out
    return rule


def _check_positive(out_sp: tuple, x: torch.Tensor, kind: str) -> None:
    if any(o < 1 for o in out_sp):
        raise RuntimeError(f"{kind}: input of shape {tuple(x.shape)} is too small (output size {out_sp})")


def _pad(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
    pads = list(_arg(args, kwargs, 1, "pad"))
    out = F.pad(x, pads, *args[2:], **{k: v for k, v in kwargs.items() if k not in ("input", "pad")})
    g = tr.geo.get(id(x))
    geo = g
    if g is not None and g.spatial:
        n = len(g.rf)
        before = [0] * n  # pads are (last dim before, last dim after, next-to-last before, ...)
        for i in range(min(len(pads) // 2, n)):
            before[n - 1 - i] = pads[2 * i]
        geo = Geo(g.rf, g.jump, tuple(c - b * j for c, b, j in zip(g.start, before, g.jump)), True)
    tr.record("pad", (x,), out, geo)
    return out


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and x != 1 and y != 1:
            raise RuntimeError(f"shapes {tuple(a)} and {tuple(b)} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(reversed(out))


def _binary(kind: str, inplace: bool):
    def rule(tr: _Tracer, x: torch.Tensor, args: tuple, kwargs: dict):
        y = _arg(args, kwargs, 1, "other")
        tensors = (x, y) if isinstance(y, torch.Tensor) else (x,)
        shape = _broadcast(x.shape, y.shape) if isinstance(y, torch.Tensor) else tuple(x.shape)
        if inplace:
            if shape != tuple(x.shape):
                raise RuntimeError(f"in-place {kind}: {tuple(y.shape)} does not broadcast to {tuple(x.shape)}")
            out = x
        else:
            dtype = x.dtype
            if isinstance(y, torch.Tensor) and y.dim() > 0 and y.dtype.is_floating_point and not dtype.is_floating_point:
                dtype = y.dtype
            out = torch.empty(shape, device="meta", dtype=dtype)
        tr.record(kind, tensors, out, tr.merged_geo(tensors, shape), other=math.prod(shape))
        return out
    return rule


def _cat(tr: _Tracer, x: Any, args: tuple, kwargs: dict):
    tensors = list(_arg(args, kwargs, 0, "tensors"))
    dim = _arg(args, kwargs, 1, "dim", 0)
    ts = [t for t in tensors if isinstance(t, torch.Tensor) and not (t.dim() == 1 and t.shape[0] == 0)]
    if not ts:
        return torch.cat(_to_meta(tensors), dim)
    ref = ts[0]
    dim = dim % ref.dim()
    for t in ts[1:]:
        if t.dim() != ref.dim() or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape)) if i != dim):
            raise RuntimeError(f"cat: shapes {[tuple(t.shape) for t in ts]} do not match off dim {dim}")
    shape = list(ref.shape)
    shape[dim] = sum(t.shape[dim] for t in ts)
    out = _empty(shape, ref)
    tr.record("cat", ts, out, tr.merged_geo(ts, shape))
    return out


_ELEMENTWISE = {
    "add", "iadd", "radd", "sub", "isub", "rsub", "mul", "imul", "rmul", "div", "truediv", "itruediv",
    "sigmoid", "tanh", "exp", "clamp", "clamp_min", "clamp_max", "neg", "abs", "pow", "sqrt", "rsqrt",
    "relu", "gelu", "silu", "hardswish", "hardsigmoid", "softmax", "log_softmax", "mean", "sum",
    "addcmul", "maximum", "minimum", "where",
}

_PASSTHROUGH = {
    torch.Tensor.dim, torch.Tensor.size, torch.Tensor.shape.__get__, torch.Tensor.ndim.__get__,
    torch.Tensor.dtype.__get__, torch.Tensor.device.__get__, torch.Tensor.numel,
    torch.Tensor.is_contiguous, torch.Tensor.requires_grad.__get__, torch.Tensor.__len__,
    torch.Tensor.is_meta.__get__,
}

_RULES: dict[Callable, Callable] = {
    torch.conv1d: _conv, torch.conv2d: _conv, torch.conv3d: _conv,
    torch.conv_transpose1d: _conv_transpose, torch.conv_transpose2d: _conv_transpose,
    torch.conv_transpose3d: _conv_transpose,
    F.linear: _linear, torch.addmm: _addmm, torch.matmul: _matmul, torch.Tensor.__matmul__: _matmul,
    F.batch_norm: _same_shape("batch_norm", None), F.layer_norm: _same_shape("layer_norm", None),
    F.group_norm: _same_shape("group_norm", None), F.instance_norm: _same_shape("instance_norm", None),
    F.local_response_norm: _same_shape("local_response_norm", None),
    F.relu: _same_shape("relu", 1), torch.relu: _same_shape("relu", None),
    torch.relu_: _inplace_same_shape("relu"), torch.Tensor.relu_: _inplace_same_shape("relu"),
    F.relu6: _same_shape("relu6", 1), F.hardtanh: _same_shape("hardtanh", 3),
    F.hardswish: _same_shape("hardswish", 1), F.hardsigmoid: _same_shape("hardsigmoid", 1),
    F.silu: _same_shape("silu", 1), F.mish: _same_shape("mish", 1), F.gelu: _same_shape("gelu", None),
    F.leaky_relu: _same_shape("leaky_relu", 2), F.elu: _same_shape("elu", 2),
    torch.sigmoid: _same_shape("sigmoid", None), torch.Tensor.sigmoid: _same_shape("sigmoid", None),
    F.sigmoid: _same_shape("sigmoid", None), torch.tanh: _same_shape("tanh", None),
    F.softmax: _same_shape("softmax", None), F.log_softmax: _same_shape("log_softmax", None),
    F.dropout: _dropout, F.dropout2d: _dropout, F.dropout1d: _dropout, F.dropout3d: _dropout,
    F.alpha_dropout: _dropout,
    F.max_pool1d: _pool(1, "max_pool1d", True), F.max_pool2d: _pool(2, "max_pool2d", True),
    F.max_pool3d: _pool(3, "max_pool3d", True),
    F.avg_pool1d: _pool(1, "avg_pool1d", False), F.avg_pool2d: _pool(2, "avg_pool2d", False),
    F.avg_pool3d: _pool(3, "avg_pool3d", False),
    F.adaptive_avg_pool1d: _adaptive_pool(1, "adaptive_avg_pool1d"),
    F.adaptive_avg_pool2d: _adaptive_pool(2, "adaptive_avg_pool2d"),
    F.adaptive_avg_pool3d: _adaptive_pool(3, "adaptive_avg_pool3d"),
    F.adaptive_max_pool1d: _adaptive_pool(1, "adaptive_max_pool1d"),
    F.adaptive_max_pool2d: _adaptive_pool(2, "adaptive_max_pool2d"),
    F.adaptive_max_pool3d: _adaptive_pool(3, "adaptive_max_pool3d"),
    F.pad: _pad,
    torch.cat: _cat, torch.concat: _cat, torch.concatenate: _cat,
}
for _kind, _fns, _ifns in (
    ("add", (torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__),
     (torch.Tensor.add_, torch.Tensor.__iadd__)),
    ("sub", (torch.sub, torch.Tensor.sub, torch.Tensor.__sub__), (torch.Tensor.sub_, torch.Tensor.__isub__)),
    ("mul", (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__),
     (torch.Tensor.mul_, torch.Tensor.__imul__)),
    ("div", (torch.div, torch.Tensor.div, torch.Tensor.__truediv__),
     (torch.Tensor.div_, torch.Tensor.__itruediv__)),
):
    for _f in _fns:
        _RULES[_f] = _binary(_kind, False)
    for _f in _ifns:
        _RULES[_f] = _binary(_kind, True)


_MODULE_TRAIN = nn.Module.train


def trace_module(model: nn.Module, input_size: Sequence[int], dtype: torch.dtype = torch.float32) -> Trace:
    """Run the shape-only pass of ``model`` on a batch-1 meta input of ``input_size`` (C, H, W...).

    The model is put in eval mode for the pass (inference semantics: no auxiliary heads,
    dropout off) and each module's ``training`` flag is restored afterwards. Raises
    ``RuntimeError`` (with the layer name) when the input does not fit the model.
    """
    named = list(model.named_modules())
    names = {id(m): n for n, m in named if n}
    tr = _Tracer(names, dtype)
    flags = [(m, m.training) for _, m in named]
    handles = []
    try:
        # Global module hooks, live only during this pass and only for this thread: registering
        # two hooks on each of DenseNet's 430 modules costs more than the whole pass.
        handles.append(register_module_forward_pre_hook(tr.pre_hook))
        handles.append(register_module_forward_hook(tr.post_hook))
        if all(type(m).train is _MODULE_TRAIN for _, m in named):
            for _, m in named:  # what ``model.eval()`` does, minus a __setattr__ walk per module
                object.__setattr__(m, "training", False)
        else:
            model.eval()  # a custom ``train()`` override must see the call
        x = torch.empty((1, *input_size), device="meta", dtype=dtype)
        n_sp = len(input_size) - 1
        tr.add_input(x, Geo((1.0,) * n_sp, (1.0,) * n_sp, (0.0,) * n_sp, True))
        with torch.no_grad(), tr:
            try:
                tr.root = model
                y = model(x)
            except Exception as e:
                where = tr.stack[-1].name if tr.stack else type(model).__name__
                raise RuntimeError(f"at {where}: {e}") from e
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags:
            if m.training is not flag:
                object.__setattr__(m, "training", flag)  # a plain bool attribute, as Module.train sets it
    outs = list(_iter_tensors(y))
    out = outs[0] if outs else None
    return Trace(
        calls=tr.calls,
        ops=tr.ops,
        output_shape=tuple(out.shape) if out is not None else None,
        output_geo=tr.geo.get(id(out)) if out is not None else None,
        peak_activation_bytes=tr.peak_bytes(outs),
        max_rf=tr.max_rf,
        total_macs=sum(o.macs for o in tr.ops),
        total_other=sum(o.other for o in tr.ops),
        modules=[m for _, m in named],
    )
