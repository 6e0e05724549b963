"""Receptive-field geometry of a tensor's units and how each kind of layer changes it.

Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019:
a unit has a field of ``r`` input pixels; adjacent units are ``j`` pixels apart (the jump, or
effective stride); unit 0 is centred at ``c``. For a layer with kernel ``k``, dilation ``d``
(effective kernel ``k' = d(k-1)+1``), stride ``s``, padding ``p``::

    r_out = r + (k' - 1) j        j_out = j s        c_out = c + ((k' - 1)/2 - p) j

Upsampling runs this backwards (the dense-prediction layers of FCN and U-Net). A transposed conv
(stride ``s``) places input unit ``i`` at output ``i s - p``, so output units are ``j/s`` apart and
each sees ``ceil(k'/s)`` adjacent input units: ``r_out = r + (ceil(k'/s) - 1) j``, centre of unit
0 ``c + (p - (k'-1)/2) j / s`` (the mean over its taps). Interpolation by a factor ``f`` reads ``taps``
adjacent input units (nearest 1, (bi)linear 2, bicubic 4) at source position ``(o + 1/2)/f - 1/2``
(``align_corners=False``) or ``o (n_in - 1)/(n_out - 1)`` (``True``): ``j_out = j / f``,
``r_out = r + (taps - 1) j``. Upsampled units are not evenly spaced in their support (with 2x
bilinear, outputs 2i-1 and 2i read the same two inputs); ``jump`` is the mean spacing and ``start``
the weighted centre, so a unit's field box is exact in size and within ``j/2`` in position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Geo", "union", "conv_geo", "conv_transpose_geo", "resample_geo", "adaptive_pool_geo", "pad_geo"]


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


def union(a: Geo, b: Geo) -> Geo:
    """Union of two aligned fields: Araujo et al.'s "largest over the paths" where paths merge
    (residual add, concat, FCN's skip fusion); the jump is the finer of the two."""
    rf, start = [], []
    for ra, ca, rb, cb in zip(a.rf, a.start, b.rf, b.start):
        lo = min(ca - (ra - 1) / 2, cb - (rb - 1) / 2)
        hi = max(ca + (ra - 1) / 2, cb + (rb - 1) / 2)
        rf.append(hi - lo + 1)
        start.append((lo + hi) / 2)
    jump = tuple(min(x, y) for x, y in zip(a.jump, b.jump))
    return Geo(tuple(rf), jump, tuple(start), True)


def conv_geo(g: Geo, k: Sequence[int], s: Sequence[int], p: Sequence[int], d: Sequence[int]) -> Geo:
    """Convolution or pooling window (the Distill recurrences above)."""
    rf, jump, start = [], [], []
    for r, j, c, ki, si, pi, di in zip(g.rf, g.jump, g.start, k, s, p, d):
        ke = di * (ki - 1) + 1
        rf.append(r + (ke - 1) * j)
        jump.append(j * si)
        start.append(c + ((ke - 1) / 2 - pi) * j)
    return Geo(tuple(rf), tuple(jump), tuple(start), True)


def conv_transpose_geo(g: Geo, k: Sequence[int], s: Sequence[int], p: Sequence[int], d: Sequence[int]) -> Geo:
    """Transposed convolution: jump ``j/s``, ``ceil(k'/s)`` input units per output unit."""
    rf, jump, start = [], [], []
    for r, j, c, ki, si, pi, di in zip(g.rf, g.jump, g.start, k, s, p, d):
        ke = di * (ki - 1) + 1
        rf.append(r + (math.ceil(ke / si) - 1) * j)
        jump.append(j / si)
        start.append(c + (pi - (ke - 1) / 2) * j / si)
    return Geo(tuple(rf), tuple(jump), tuple(start), True)


def resample_geo(g: Geo, in_size: Sequence[int], out_size: Sequence[int], taps: int,
                 align_corners: bool) -> Geo:
    """Interpolation (``F.interpolate`` / ``nn.Upsample``) from ``in_size`` to ``out_size`` reading
    ``taps`` adjacent input units per output unit."""
    rf, jump, start = [], [], []
    for r, j, c, n_in, n_out in zip(g.rf, g.jump, g.start, in_size, out_size):
        rf.append(r + (taps - 1) * j if n_in > 1 else r)
        if align_corners:
            step = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
            jump.append(j * step if n_out > 1 else j * n_in)
            start.append(c)
        else:
            step = n_in / n_out
            jump.append(j * step)
            start.append(c + (step / 2 - 0.5) * j)
    return Geo(tuple(rf), tuple(jump), tuple(start), True)


def adaptive_pool_geo(g: Geo, in_size: Sequence[int], out_size: Sequence[int]) -> Geo:
    """Adaptive pooling: PyTorch's windows ``[floor(i I/O), ceil((i+1) I/O))``; the largest window
    and the mean step. Global pooling (output 1) collapses the spatial dims."""
    if all(o == 1 for o in out_size):
        return g.collapse(in_size)
    ks = tuple(max(math.ceil((i + 1) * a / b) - (i * a) // b for i in range(b)) for a, b in zip(in_size, out_size))
    rf = tuple(r + (kk - 1) * j for r, j, kk in zip(g.rf, g.jump, ks))
    jump = tuple(j * a / b for j, a, b in zip(g.jump, in_size, out_size))
    start = tuple(c + (kk - 1) / 2 * j for c, j, kk in zip(g.start, g.jump, ks))
    return Geo(rf, jump, start, True)


def pad_geo(g: Geo, before: Sequence[int]) -> Geo:
    """Padding ``before`` units at the start of each dim shifts unit 0's centre back."""
    return Geo(g.rf, g.jump, tuple(c - b * j for c, b, j in zip(g.start, before, g.jump)), True)
