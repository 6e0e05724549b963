"""Seeds mixed from several integers (SplitMix64, Steele et al. 2014): one stream per (seed, epoch, step, rank)."""

from __future__ import annotations

_M64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def mix_seed(*values: int) -> int:
    """A 63-bit seed from several integers (splitmix64 chained); different tuples give unrelated seeds."""
    h = 0
    for v in values:
        h = _splitmix64(h ^ (int(v) & _M64))
    return h >> 1
