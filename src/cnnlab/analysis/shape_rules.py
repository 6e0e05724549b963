"""Shape rules of the inspection engine: for each layer op, the output shape, the MACs / other ops
and the receptive-field geometry of the output (:mod:`cnnlab.analysis.geometry`), computed from
the arguments without running the op. ``RULES`` maps a torch function to its rule
``rule(tracer, x, args, kwargs) -> meta tensor``; the tracer (:mod:`cnnlab.analysis.tracer`) calls it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from cnnlab.analysis.geometry import Geo, adaptive_pool_geo, conv_geo, conv_transpose_geo, pad_geo, resample_geo


class Recorder(Protocol):
    """What a rule needs from the tracer that calls it (:class:`cnnlab.analysis.tracer` implements it)."""

    def record(self, kind: str, inputs: Sequence[torch.Tensor], out: torch.Tensor | None, geo: Geo | None,
               macs: int = 0, other: int = 0) -> None: ...

    geo: dict[int, Geo]  # receptive-field geometry of each traced tensor, by id()

    def merged_geo(self, tensors: Sequence[torch.Tensor], out_shape: Sequence[int]) -> Geo | None: ...


__all__ = ["RULES", "PASSTHROUGH", "ELEMENTWISE", "Recorder"]


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



def first_tensor(obj: Any) -> torch.Tensor | None:
    for t in iter_tensors(obj):
        return t
    return None


def iter_tensors(obj: Any):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, list | tuple):
        for o in obj:
            yield from iter_tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from iter_tensors(o)


def to_meta(obj: Any) -> Any:
    """Real tensors (parameters, buffers, constants) met by glue ops become meta stand-ins."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.is_meta else obj.to("meta")
    if isinstance(obj, tuple):
        return tuple(to_meta(o) for o in obj)
    if isinstance(obj, list):
        return [to_meta(o) for o in obj]
    if isinstance(obj, dict):
        return {k: to_meta(v) for k, v in obj.items()}
    return obj


def _empty(shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    return torch.empty(tuple(shape), device="meta", dtype=like.dtype)


# --- shape rules -------------------------------------------------------------------------------

def _conv_like(tr: Recorder, x: torch.Tensor, kind: str, k: tuple, s: tuple, p: tuple, d: tuple,
               out_spatial: tuple, channels: int, macs: int, other: int, extra: Any = None):
    n = len(k)
    out = _empty((*x.shape[:-n], *out_spatial) if channels < 0 else (*x.shape[:-n - 1], channels, *out_spatial), x)
    g = tr.geo.get(id(x))
    geo = None
    if g is not None and g.spatial and len(g.rf) == n:
        geo = conv_geo(g, k, s, p, d)
    elif g is not None:
        geo = g
    tr.record(kind, (x,), out, geo, macs=macs, other=other)
    return out


def _conv(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
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


def _conv_transpose(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
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
        geo = conv_transpose_geo(g, k, s, p, d)
    elif g is not None:
        geo = g
    tr.record(f"conv_transpose{n}d", (x,), out, geo, macs=macs)
    return out


def _linear(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
    w = _arg(args, kwargs, 1, "weight")
    if x.shape[-1] != w.shape[1]:
        raise RuntimeError(f"linear expects {w.shape[1]} input features, got {x.shape[-1]} "
                           f"(input shape {tuple(x.shape)})")
    out = _empty((*x.shape[:-1], w.shape[0]), x)
    tr.record("linear", (x,), out, tr.merged_geo((x,), out.shape), macs=out.numel() * w.shape[1])
    return out


def _addmm(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
    a, b = _arg(args, kwargs, 1, "mat1"), _arg(args, kwargs, 2, "mat2")
    out = _empty((a.shape[0], b.shape[1]), a)
    tr.record("addmm", (x, a), out, tr.merged_geo((a,), out.shape), macs=out.numel() * a.shape[1])
    return out


def _matmul(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
    other = _arg(args, kwargs, 1, "other")
    a, b = to_meta(x), to_meta(other)
    out = torch.matmul(a, b)
    inner = a.shape[-1]
    tr.record("matmul", (x, other), out, tr.merged_geo((x, other), out.shape), macs=out.numel() * inner)
    return out


def _same_shape(kind: str, inplace_pos: int | None, ops_per_elem: int = 1):
    def rule(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
        inplace = False
        if inplace_pos is not None:
            inplace = bool(_arg(args, kwargs, inplace_pos, "inplace", False))
        out = x if inplace else _empty(x.shape, x)
        tr.record(kind, (x,), out, tr.geo.get(id(x)), other=ops_per_elem * x.numel())
        return out
    return rule


def _inplace_same_shape(kind: str):
    def rule(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
        tr.record(kind, (x,), x, tr.geo.get(id(x)), other=x.numel())
        return x
    return rule


def _dropout(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
    training = _arg(args, kwargs, 2, "training", True)
    inplace = _arg(args, kwargs, 3, "inplace", False)
    out = x if (inplace or not training) else _empty(x.shape, x)
    tr.record("dropout", (x,), out, tr.geo.get(id(x)), other=x.numel() if training else 0)
    return out


def _pool(n: int, kind: str, max_pool: bool):
    def rule(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
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
    def rule(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
        osz = _ntuple(_arg(args, kwargs, 1, "output_size"), n)
        ret_idx = bool(_arg(args, kwargs, 2, "return_indices", False)) if "max" in kind else False
        in_sp = tuple(x.shape[-n:])
        out_sp = tuple(i if o is None else o for i, o in zip(in_sp, osz))
        g = tr.geo.get(id(x))
        out = _empty((*x.shape[:-n], *out_sp), x)
        geo = g
        if g is not None and g.spatial and len(g.rf) == n:
            geo = adaptive_pool_geo(g, in_sp, out_sp)
        tr.record(kind, (x,), out, geo, other=x.numel())
        if ret_idx:
            return out, torch.empty(out.shape, device="meta", dtype=torch.long)
        return out
    return rule


def _check_positive(out_sp: tuple, x: torch.Tensor, kind: str) -> None:
    if any(o < 1 for o in out_sp):
        raise RuntimeError(f"{kind}: input of shape {tuple(x.shape)} is too small (output size {out_sp})")


def _pad(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
    pads = list(_arg(args, kwargs, 1, "pad"))
    out = F.pad(x, pads, *args[2:], **{k: v for k, v in kwargs.items() if k not in ("input", "pad")})
    g = tr.geo.get(id(x))
    geo = g
    if g is not None and g.spatial:
        n = len(g.rf)
        before = [0] * n  # pads are (last dim before, last dim after, next-to-last before, ...)
        for i in range(min(len(pads) // 2, n)):
            before[n - 1 - i] = pads[2 * i]
        geo = pad_geo(g, before)
    tr.record("pad", (x,), out, geo)
    return out


_TAPS = {"nearest": 1, "nearest-exact": 1, "linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}


def _interpolate(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
    """``F.interpolate`` (and ``nn.Upsample``): output size as PyTorch computes it; geometry by
    :func:`~cnnlab.analysis.geometry.resample_geo`; "area" is adaptive average pooling."""
    size = _arg(args, kwargs, 1, "size")
    scale = _arg(args, kwargs, 2, "scale_factor")
    mode = _arg(args, kwargs, 3, "mode", "nearest")
    align = bool(_arg(args, kwargs, 4, "align_corners", None))
    n = x.dim() - 2
    in_sp = tuple(x.shape[2:])
    if (size is None) == (scale is None):
        raise RuntimeError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        out_sp = _ntuple(size, n)
    else:
        out_sp = tuple(int(math.floor(i * float(f))) for i, f in zip(in_sp, _ntuple(scale, n)))
    _check_positive(out_sp, x, "interpolate")
    out = _empty((*x.shape[:2], *out_sp), x)
    g = tr.geo.get(id(x))
    geo = g
    if mode == "area":
        if g is not None and g.spatial and len(g.rf) == n:
            geo = adaptive_pool_geo(g, in_sp, out_sp)
        tr.record("interpolate", (x,), out, geo, other=x.numel())
        return out
    taps = _TAPS.get(mode)
    if taps is None:
        raise RuntimeError(f"interpolate: unknown mode {mode!r}")
    if g is not None and g.spatial and len(g.rf) == n:
        geo = resample_geo(g, in_sp, out_sp, taps, align)
    tr.record("interpolate", (x,), out, geo, other=out.numel() * taps ** n if taps > 1 else 0)
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
    def rule(tr: Recorder, x: torch.Tensor, args: tuple, kwargs: dict):
        y = _arg(args, kwargs, 1, "other")
        tensors = (x, y) if isinstance(y, torch.Tensor) else (x,)
        shape = _broadcast(x.shape, y.shape) if isinstance(y, torch.Tensor) else tuple(x.shape)
        if inplace:
            if shape != tuple(x.shape):
                raise RuntimeError(f"in-place {kind}: {tuple(y.shape)} does not broadcast to {tuple(x.shape)}")
            out = x
        else:
            dtype = x.dtype
            if (isinstance(y, torch.Tensor) and y.dim() > 0 and y.dtype.is_floating_point
                    and not dtype.is_floating_point):
                dtype = y.dtype
            out = torch.empty(shape, device="meta", dtype=dtype)
        tr.record(kind, tensors, out, tr.merged_geo(tensors, shape), other=math.prod(shape))
        return out
    return rule


def cat_rule(tr: Recorder, x: Any, args: tuple, kwargs: dict):
    tensors = list(_arg(args, kwargs, 0, "tensors"))
    dim = _arg(args, kwargs, 1, "dim", 0)
    ts = [t for t in tensors if isinstance(t, torch.Tensor) and not (t.dim() == 1 and t.shape[0] == 0)]
    if not ts:
        return torch.cat(to_meta(tensors), dim)
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


ELEMENTWISE = {
    "add", "iadd", "radd", "sub", "isub", "rsub", "mul", "imul", "rmul", "div", "truediv", "itruediv",
    "sigmoid", "tanh", "exp", "clamp", "clamp_min", "clamp_max", "neg", "abs", "pow", "sqrt", "rsqrt",
    "relu", "gelu", "silu", "hardswish", "hardsigmoid", "softmax", "log_softmax", "mean", "sum",
    "addcmul", "maximum", "minimum", "where",
}

PASSTHROUGH = {
    torch.Tensor.dim, torch.Tensor.size, torch.Tensor.shape.__get__, torch.Tensor.ndim.__get__,
    torch.Tensor.dtype.__get__, torch.Tensor.device.__get__, torch.Tensor.numel,
    torch.Tensor.is_contiguous, torch.Tensor.requires_grad.__get__, torch.Tensor.__len__,
    torch.Tensor.is_meta.__get__,
}

RULES: dict[Callable, Callable] = {
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
    F.pad: _pad, F.interpolate: _interpolate,
    torch.cat: cat_rule, torch.concat: cat_rule, torch.concatenate: cat_rule,
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
        RULES[_f] = _binary(_kind, False)
    for _f in _ifns:
        RULES[_f] = _binary(_kind, True)

