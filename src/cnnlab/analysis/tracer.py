"""The inspection engine: one shape-only pass over a model, no weights or activations touched.

Three modules: :mod:`~cnnlab.analysis.geometry` (receptive-field state and how layers change it),
:mod:`~cnnlab.analysis.shape_rules` (per-op output shape, cost and geometry), and this one (the
torch-function mode that runs the model's ``forward``, attributes ops to modules, tracks memory).

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
  Upsampling (transposed convolution, ``F.interpolate`` / ``nn.Upsample``) divides the jump by its
  factor and widens the field by the input units each output reads (see the geometry module).
* **peak activation memory** -- inference with tensors freed after their last use: the largest
  sum of live activation bytes (input included, views and in-place results not double-counted).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode

from cnnlab.analysis.geometry import Geo, union
from cnnlab.analysis.shape_rules import (
    ELEMENTWISE,
    PASSTHROUGH,
    RULES,
    cat_rule,
    first_tensor,
    iter_tensors,
    to_meta,
)

__all__ = ["Geo", "OpRecord", "CallRecord", "Trace", "trace_module"]


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
        x = args[0] if args and isinstance(args[0], torch.Tensor) else first_tensor(args)
        if x is not None:
            m = self.meta.get(id(x))
            rec.input_shape = m[0] if m is not None else tuple(x.shape)
        self.calls.append(rec)
        self.stack.append(rec)

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        if threading.get_ident() != self.thread or not self.stack or self.stack[-1].module is not module:
            return
        rec = self.stack.pop()
        y = output if isinstance(output, torch.Tensor) else first_tensor(output)
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
                best = g if best is None or not best.spatial else union(best, g)
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
        if func in PASSTHROUGH:
            return func(*args, **kwargs)
        if threading.get_ident() != self.thread:
            return func(*args, **kwargs)
        rule = RULES.get(func)
        if rule is not None:
            x = args[0] if args else kwargs.get("input", kwargs.get("tensors"))
            if isinstance(x, torch.Tensor) or rule is cat_rule:
                return rule(self, x, args, kwargs)
        args, kwargs = to_meta(args), to_meta(kwargs)
        out = func(*args, **kwargs)
        tensors = [t for t in iter_tensors((args, kwargs))]
        if not tensors:
            return out
        outs = [out] if isinstance(out, torch.Tensor) else list(iter_tensors(out))
        kind = getattr(func, "__name__", str(func)).strip("_")
        if not outs:
            return out
        elementwise = kind.rstrip("_") in ELEMENTWISE
        for i, o in enumerate(outs):
            geo = self.merged_geo(tensors, o.shape)
            other = o.numel() if (elementwise and i == 0) else 0
            self.record(kind, tensors if i == 0 else (), o, geo, other=other)
        return out




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
    outs = list(iter_tensors(y))
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
