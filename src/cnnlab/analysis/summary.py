"""``cnnlab.inspect``: per-layer shapes, parameters, MACs, receptive field and memory of a model.

The numbers come from one shape-only pass (:mod:`cnnlab.analysis.tracer`): a model named in the
registry is built on the meta device, a model instance is run on a meta input, so no weights or
activations are allocated and the cost does not grow with the input size.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gc
import io
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from cnnlab.analysis.tracer import Geo, trace_module
from cnnlab.errors import ConfigError

__all__ = ["LayerRow", "Summary", "inspect", "count_macs", "format_macs", "parse_size", "build_meta"]

COLUMNS = ("layer", "type", "input_shape", "output_shape", "params", "trainable_params", "frozen_params",
           "macs", "other_ops", "receptive_field", "jump", "activation_bytes")


@dataclass(frozen=True)
class LayerRow:
    """One module call. ``depth`` 1 = a direct child of the model; ``is_leaf``: no sub-module ran.

    ``params`` counts the module's parameters recursively (a container's row sums its children);
    ``macs`` and ``other_ops`` add up every op executed inside the call; ``receptive_field`` and
    ``jump`` describe the output tensor's units, in input pixels (an int when equal along H and
    W, else a tuple); ``jump`` is ``None`` once the spatial dims are gone (flatten / global pool);
    ``activation_bytes`` is the size of the output tensor at batch size 1; ``rf_center`` is
    the centre of unit 0's field in input pixels (unit i's centre is ``rf_center + i * jump``;
    Araujo et al.'s effective padding is ``(receptive_field - 1)/2 - rf_center``).
    """

    name: str
    type: str
    depth: int
    is_leaf: bool
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    params: int
    trainable_params: int
    macs: int
    other_ops: int
    receptive_field: int | float | tuple | None
    jump: int | float | tuple | None
    activation_bytes: int
    rf_center: int | float | tuple | None = None  # centre of unit 0's field (input pixels)

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["frozen_params"] = self.frozen_params
        return d


@dataclass(frozen=True)
class Summary:
    """What :func:`inspect` returns. ``print(s)`` shows a table; ``to_markdown/to_csv/to_json``."""

    model_name: str
    input_size: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    total_macs: int
    total_other_ops: int
    peak_activation_bytes: int
    param_bytes: int
    output_shape: tuple[int, ...] | None
    receptive_field: int | float | tuple | None
    depth: int | None = 3
    notes: tuple[str, ...] = ()  # model-specific lines under the table (a detector's stride, anchors, ...)

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_flops(self) -> int:
        """FLOPs = 2 x MACs (one multiply-add is two floating-point operations)."""
        return 2 * self.total_macs

    def row(self, name: str) -> LayerRow:
        """The (first) row of the module with qualified name ``name`` (e.g. ``"features.0"``)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def visible_rows(self, depth: int | None = None) -> list[LayerRow]:
        depth = self.depth if depth is None else depth
        if depth is None or depth < 0:
            return list(self.rows)
        return [r for r in self.rows if r.depth <= depth]

    def totals(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "input_size": list(self.input_size),
            "output_shape": list(self.output_shape) if self.output_shape else None,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "frozen_params": self.frozen_params,
            "total_macs": self.total_macs,
            "total_flops": self.total_flops,
            "total_other_ops": self.total_other_ops,
            "peak_activation_bytes": self.peak_activation_bytes,
            "param_bytes": self.param_bytes,
            "receptive_field": _jsonable(self.receptive_field),
            "notes": list(self.notes),
        }

    # --- output formats -----------------------------------------------------------------------
    def _cells(self, r: LayerRow, indent: bool) -> list[str]:
        name = ("  " * (r.depth - 1) + r.name) if indent else r.name
        return [name, r.type, _shape(r.input_shape), _shape(r.output_shape), f"{r.params:,}",
                f"{r.macs:,}", f"{r.other_ops:,}", format_geo(r.receptive_field), format_geo(r.jump),
                format_bytes(r.activation_bytes)]

    _HEAD = ("Layer", "Type", "Input", "Output", "Params", "MACs", "Other ops", "RF", "Jump", "Act. mem")

    def _footer(self) -> list[str]:
        return [
            f"Input: {_shape((1, *self.input_size))}   Output: {_shape(self.output_shape)}",
            f"Total params: {self.total_params:,}  (trainable {self.trainable_params:,}, "
            f"frozen {self.frozen_params:,}; {format_bytes(self.param_bytes)})",
            f"MACs: {self.total_macs:,} ({format_macs(self.total_macs)}; FLOPs = 2 x MACs = "
            f"{format_macs(self.total_flops, 'FLOPs')})   other ops: {self.total_other_ops:,}",
            f"Peak activation memory (batch 1, inference): {format_bytes(self.peak_activation_bytes)}   "
            f"Receptive field: {format_geo(self.receptive_field)}",
            "MACs count conv, transposed conv, linear and matmul multiply-adds; BN, pooling, "
            "activations and elementwise ops are 'other ops'.",
            *self.notes,
        ]

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{self.model_name}  input {_shape(self.input_size)}", title_justify="left")
        for i, h in enumerate(self._HEAD):
            table.add_column(h, justify="right" if i >= 4 else "left", no_wrap=i == 0)
        for r in self.visible_rows():
            table.add_row(*self._cells(r, indent=True), style=None if r.is_leaf else "bold")
        return Group(table, Text("\n".join(self._footer())))

    def __str__(self) -> str:
        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=180, force_terminal=False, color_system=None).print(self)
        return buf.getvalue().rstrip("\n")

    def to_markdown(self, depth: int | None = None) -> str:
        lines = [f"**{self.model_name}** input {_shape(self.input_size)}", "",
                 "| " + " | ".join(self._HEAD) + " |",
                 "|" + "|".join("---:" if i >= 4 else "---" for i in range(len(self._HEAD))) + "|"]
        for r in self.visible_rows(depth):
            cells = self._cells(r, indent=False)
            cells[0] = "&nbsp;" * 2 * (r.depth - 1) + f"`{cells[0]}`"
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
        lines += [f"- {line}" for line in self._footer()]
        return "\n".join(lines) + "\n"

    def to_csv(self, depth: int | None = None) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(("depth", *COLUMNS))
        for r in self.visible_rows(depth):
            w.writerow((r.depth, r.name, r.type, _shape(r.input_shape), _shape(r.output_shape), r.params,
                        r.trainable_params, r.frozen_params, r.macs, r.other_ops,
                        format_geo(r.receptive_field), format_geo(r.jump), r.activation_bytes))
        return buf.getvalue()

    def to_json(self, depth: int | None = None, indent: int | None = 2) -> str:
        rows = []
        for r in self.visible_rows(depth):
            d = r.as_dict()
            for k in ("input_shape", "output_shape", "receptive_field", "jump", "rf_center"):
                d[k] = _jsonable(d[k])
            rows.append(d)
        return json.dumps({**self.totals(), "rows": rows}, indent=indent)


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _shape(s: Sequence[int] | None) -> str:
    return "-" if s is None else "x".join(str(d) for d in s)


def format_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def format_macs(n: int | float, unit: str = "MACs") -> str:
    """``n`` multiply-adds in MMACs or GMACs with three significant figures.

    ``416520 -> "0.417 MMACs"`` (LeNet-5), ``385187552 -> "385 MMACs"``, ``15470264320 -> "15.5 GMACs"``
    (VGG-16): a small net no longer reads ``0.000 G``. G from 1e9 on (after rounding), else M.
    """
    if n is None:
        return "-"
    n = float(f"{float(n):.3g}")  # round to 3 significant figures first, so 999.96e6 -> "1.00 G"
    if n == 0:
        return f"0 M{unit}"
    scale, prefix = (1e9, "G") if abs(n) >= 1e9 else (1e6, "M")
    v = n / scale
    decimals = max(0, 2 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f} {prefix}{unit}"


def format_geo(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, tuple):
        return "x".join(_num(x) for x in v)
    return _num(v)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0")


def _compact(values: tuple[float, ...]) -> int | float | tuple:
    if len(values) == 2 and values[0] == values[1]:  # the common square case, without the tuple work
        v = values[0]
        return int(v) if float(v).is_integer() else v
    vals = tuple(int(v) if float(v).is_integer() else v for v in values)
    return vals[0] if len(set(vals)) == 1 else vals


def parse_size(size: str | Sequence[int]) -> tuple[int, ...]:
    """``"3x224x224"`` or ``(3, 224, 224)`` -> ``(3, 224, 224)`` (channels first, no batch dim)."""
    if isinstance(size, str):
        parts = size.lower().replace("×", "x").split("x")
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"bad size {size!r}: expected integers joined by 'x', e.g. 3x224x224") from None
    else:
        dims = tuple(size)
    if len(dims) < 2 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise ConfigError(f"bad input size {size!r}: need channels and at least one spatial dim, "
                          "all positive integers (e.g. 3x224x224)")
    return dims


# In-place initialisers: on meta tensors they do nothing, yet their meta kernels cost most of
# the construction time, so the meta build skips them.
_INIT_FUNCS = frozenset(
    name for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")
) | {"uniform_", "normal_", "zero_", "fill_", "copy_", "exponential_", "random_", "bernoulli_",
     "erfinv_", "clamp_", "mul_", "add_", "sub_", "div_", "fill_diagonal_", "log_normal_",
     "geometric_", "cauchy_"}


class _MetaBuild(TorchFunctionMode):
    """``torch.device("meta")`` for construction, minus the (pointless) in-place initialisation."""

    def __init__(self) -> None:
        super().__init__()
        self.constructors = _device_constructors()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _INIT_FUNCS:
            t = args[0] if args else kwargs.get("tensor")
            if isinstance(t, torch.Tensor) and t.is_meta:
                return t
        if func in self.constructors and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


_INIT_LOCK = threading.Lock()
_INIT_DEPTH = 0


def _meta_noop(orig: Callable) -> Callable:
    @functools.wraps(orig)
    def init(tensor, *args, **kwargs):
        if isinstance(tensor, torch.Tensor):
            with torch._C.DisableTorchFunction():  # read is_meta without a trip through the build mode
                meta = tensor.is_meta
            if meta:
                return tensor
        return orig(tensor, *args, **kwargs)
    init.__wrapped_orig__ = orig
    return init


@contextlib.contextmanager
def _skip_meta_init():
    """While building on meta, ``nn.init.*_(t)`` returns at once when ``t`` is a meta tensor.

    Such a call initialises nothing, yet on meta it still runs its Python (fan computation,
    ``no_grad`` contexts, a dispatch per tensor method through the construction mode) -- a fifth
    of a DenseNet's meta build. Only meta tensors are short-cut, so another thread initialising
    real tensors meanwhile is unaffected; the originals are restored when the last build ends.
    """
    global _INIT_DEPTH
    with _INIT_LOCK:
        if _INIT_DEPTH == 0:
            for n in _INIT_FUNCS:
                f = getattr(nn.init, n, None)
                if callable(f) and not hasattr(f, "__wrapped_orig__"):
                    setattr(nn.init, n, _meta_noop(f))
        _INIT_DEPTH += 1
    try:
        yield
    finally:
        with _INIT_LOCK:
            _INIT_DEPTH -= 1
            if _INIT_DEPTH == 0:
                for n in _INIT_FUNCS:
                    f = getattr(nn.init, n, None)
                    if hasattr(f, "__wrapped_orig__"):
                        setattr(nn.init, n, f.__wrapped_orig__)


@contextlib.contextmanager
def _no_gc():
    """Suspend the cyclic garbage collector for one inspection (as ``timeit`` does).

    Building and tracing a model creates tens of thousands of short-lived container objects
    (every ``nn.Module`` holds ~15 dicts). With the collector on, they trigger young-generation
    collections that promote the still-live model into the old generation, and every few calls a
    full collection walks the whole heap (~330k objects after ``import torch``: ~160 ms, more than
    the inspection itself). Off, the model dies by reference counting when ``inspect`` returns.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _build_on_meta(builder: Callable[[], nn.Module]) -> nn.Module:
    """Call ``builder`` so that every parameter and buffer is a meta tensor (nothing allocated).

    A builder that computes with tensor values while constructing (``.tolist()``, ``.item()``)
    cannot run on meta; it is then built on the CPU and moved to meta (the one case that
    allocates weights, briefly).
    """
    try:
        with torch.no_grad(), _skip_meta_init(), _MetaBuild():
            return builder()
    except (NotImplementedError, RuntimeError) as e:
        if "meta" not in str(e):
            raise
    with torch.no_grad():
        model = builder()
    return model.to("meta")


def build_meta(name: str, input_size: Sequence[int] | None = None) -> tuple[nn.Module, tuple[int, ...]]:
    """Build registered model ``name`` on the meta device (no weight storage) for ``input_size``.

    Default input: the registry's ``in_chans`` x ``default_size`` x ``default_size``. ``img_size`` is
    the input's height, so small inputs select the family's small-input variant exactly as
    :func:`cnnlab.create_model` would.
    """
    from cnnlab.models import create_model, get_model_info

    info = get_model_info(name)
    if input_size is None:
        input_size = (getattr(info, "in_chans", 3), info.default_size, info.default_size)
    input_size = parse_size(input_size)
    model = _build_on_meta(lambda: create_model(name, in_chans=input_size[0], img_size=input_size[1]))
    return model, input_size


def inspect(
    model: str | nn.Module | Callable[[], nn.Module],
    input_size: str | Sequence[int] | None = None,
    *,
    depth: int | None = 3,
    dtype: torch.dtype = torch.float32,
) -> Summary:
    """Per-layer shapes, parameters, MACs, receptive field and memory of ``model``.

    ``model``: a registered name (built on the meta device), an ``nn.Module`` instance (its
    weights are never read) or a zero-argument builder such as ``torchvision.models.resnet50``
    (called under ``torch.device("meta")``). ``input_size``: ``(C, H, W)`` or ``"3x224x224"``
    without the batch dim; default: the registry's default size, or ``pretrained_cfg`` of an
    instance, else 3x224x224. ``depth``: rows deeper than this are hidden when printing
    (``None``: all). Batch size is 1.
    """
    with _no_gc():
        return _inspect(model, input_size, depth, dtype)


def _resolve(model: str | nn.Module | Callable[[], nn.Module],
             input_size: str | Sequence[int] | None) -> tuple[str, nn.Module, tuple[int, ...]]:
    """(name, module, input size) of what :func:`inspect` was given."""
    if isinstance(model, str):
        return (model, *build_meta(model, input_size))
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise ConfigError(f"inspect() needs a model name, an nn.Module or a builder, got {model!r}")
        name = getattr(model, "__name__", type(model).__name__)
        model = _build_on_meta(model)
    else:
        name = type(model).__name__
    if input_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        img = cfg.get("img_size", cfg.get("default_size", 224))
        input_size = (cfg.get("in_chans", 3), img, img)
    return name, model, parse_size(input_size)


def _inspect(model: str | nn.Module | Callable[[], nn.Module], input_size: str | Sequence[int] | None,
             depth: int | None, dtype: torch.dtype) -> Summary:
    name, model, size = _resolve(model, input_size)
    # A model whose forward the tracer cannot follow (a detector's data-dependent proposal selection and NMS)
    # offers a traceable view of its layers (``inspect_view()``) and lines explaining it (``inspect_notes(rows)``).
    full, view = model, getattr(model, "inspect_view", None)
    model = view() if callable(view) else model
    try:
        tr = trace_module(model, size, dtype)
    except RuntimeError as e:
        raise ConfigError(f"{name}: input {_shape(size)} does not fit the model ({e})") from None

    own: dict[int, tuple[int, int]] = {}
    param_bytes = total = trainable = 0
    seen: set[int] = set()
    for m in tr.modules or model.modules():
        n = t = 0
        for p in m._parameters.values():  # direct children only; faster than parameters(recurse=False)
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            n += p.numel()
            t += p.numel() if p.requires_grad else 0
            param_bytes += p.numel() * p.element_size()
        own[id(m)] = (n, t)
        total += n
        trainable += t
    rec_params: dict[int, tuple[int, int]] = {}

    def params_of(m: nn.Module) -> tuple[int, int]:
        got = rec_params.get(id(m))
        if got is None:
            n, t = own.get(id(m)) or (0, 0)  # a module built during forward (a Sequential slice)
            for c in m.children():
                cn, ct = params_of(c)
                n, t = n + cn, t + ct
            got = rec_params[id(m)] = (n, t)
        return got

    rows = []
    for c in tr.calls:
        n, t = params_of(c.module)
        g: Geo | None = c.geo
        act = 0
        if c.output_shape is not None:
            numel = 1
            for d in c.output_shape:
                numel *= d
            act = numel * (c.output_dtype or dtype).itemsize
        rows.append(LayerRow(
            name=c.name, type=type(c.module).__name__, depth=c.depth, is_leaf=c.is_leaf,
            input_shape=c.input_shape, output_shape=c.output_shape, params=n, trainable_params=t,
            macs=c.macs, other_ops=c.other,
            receptive_field=_compact(g.rf) if g is not None else None,
            jump=_compact(g.jump) if g is not None and g.spatial else None,
            activation_bytes=act,
            rf_center=_compact(g.start) if g is not None and g.spatial else None,
        ))
    notes = full.inspect_notes(rows) if model is not full and hasattr(full, "inspect_notes") else ()
    return Summary(
        model_name=name, input_size=size, rows=tuple(rows), total_params=total, trainable_params=trainable,
        total_macs=tr.total_macs, total_other_ops=tr.total_other,
        peak_activation_bytes=tr.peak_activation_bytes, param_bytes=param_bytes,
        output_shape=tr.output_shape,
        receptive_field=_compact(tr.max_rf) if tr.max_rf is not None else None, depth=depth,
        notes=tuple(notes),
    )


def count_macs(model: str | nn.Module | Callable[[], nn.Module],
               input_size: str | Sequence[int] | None = None) -> int:
    """Total conv/linear/matmul multiply-adds of one forward at batch size 1 (see :func:`inspect`)."""
    return inspect(model, input_size).total_macs
