"""Batched data augmentation: each op transforms a whole ``[B, C, H, W]`` batch with tensor ops.

No per-sample Python: per-sample random parameters are drawn as small tensors from an explicit
``torch.Generator`` and applied by indexing, ``torch.where`` and ``grid_sample``. The same generator
state gives the same batch, which is what makes a resumed run replay its augmentations exactly.

Ops (spec names, optional ``:value``), applied in this order whatever order the spec lists them:

* ``crop[:PAD]`` -- random crop with zero padding (Krizhevsky et al. 2012; He et al. 2016, §4.2: pad 4,
  random 32x32 crop): pad each side by PAD pixels, crop back to H x W at a random offset per sample.
* ``flip`` -- horizontal flip with probability 0.5. Refused for digit/character datasets (MNIST,
  KMNIST): a mirrored 2 or a mirrored kana is not the same class, so flipping adds label noise instead
  of invariance (the lectures' caveat). ``flip:force`` overrides this, e.g. to demonstrate the harm.
* ``translate[:FRAC]`` -- random shift by up to FRAC of the size (default 0.1), bilinear.
* ``rotate[:DEG]`` -- random rotation in [-DEG, DEG] degrees (default 15), bilinear; translate and
  rotate share one ``affine_grid``/``grid_sample`` pass.
* ``cutout[:SIZE]`` -- zero a SIZE x SIZE square at a random centre (DeVries & Taylor 2017; the square
  may be cut by the border). Applied after normalisation, so 0 is the mean pixel, as in the paper.
* ``noise[:SIGMA]`` -- add Gaussian noise of std SIGMA (in normalised units, default 0.1).
* ``none`` -- nothing.

Geometric ops (crop, flip, translate, rotate) run on raw pixels before normalisation (padding is black,
as torchvision's ``RandomCrop(padding=…)``); cutout and noise run after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnlab.data.idx import DIGIT_DATASETS
from cnnlab.errors import ConfigError

OPS = ("crop", "flip", "translate", "rotate", "cutout", "noise")
_DEFAULTS = {"crop": 4, "translate": 0.1, "rotate": 15.0, "cutout": 8, "noise": 0.1}


@dataclass
class BatchAugment:
    """A fixed pipeline of batched augmentations; ``None`` for an op means it is off."""

    crop: int | None = None  # padding in pixels
    flip: bool = False
    translate: float | None = None  # max fraction of width/height
    rotate: float | None = None  # max degrees
    cutout: int | None = None  # square side in pixels
    noise: float | None = None  # std in normalised units

    @classmethod
    def from_spec(cls, spec: str | None, dataset=None, **defaults) -> BatchAugment:
        """Parse ``"crop,flip"``, ``"crop:2,rotate:10,cutout:8"``, ``"none"`` or ``""``.

        ``defaults`` set values for ops named without one: ``from_spec("crop,flip", pad=2)``
        (``pad`` is an alias of ``crop``). ``dataset`` (a name or a dataset with ``.name``) enables the
        digit-flip check.
        """
        if isinstance(spec, BatchAugment):
            aug = spec
        else:
            if "pad" in defaults:
                defaults["crop"] = defaults.pop("pad")
            unknown = set(defaults) - set(_DEFAULTS)
            if unknown:
                raise ConfigError(f"unknown augmentation option(s) {sorted(unknown)}; known: {sorted(_DEFAULTS)}")
            values = {**_DEFAULTS, **defaults}
            kw: dict = {}
            force_flip = False
            for item in (spec or "none").replace(" ", "").split(","):
                if item in ("", "none"):
                    continue
                name, _, value = item.partition(":")
                if name not in OPS:
                    raise ConfigError(f"unknown augmentation {name!r} in {spec!r}; known: {', '.join(OPS)}, none")
                if name == "flip":
                    if value not in ("", "force"):
                        raise ConfigError(f"flip takes no value except 'force' (got {item!r})")
                    kw["flip"] = True
                    force_flip = force_flip or value == "force"
                    continue
                try:
                    v = float(value) if value else float(values[name])
                except ValueError:
                    raise ConfigError(f"augmentation {item!r}: {value!r} is not a number") from None
                if v < 0 or not math.isfinite(v):
                    raise ConfigError(f"augmentation {item!r}: the value must be >= 0")
                kw[name] = int(v) if name in ("crop", "cutout") else v
            aug = cls(**kw)
            if aug.flip and not force_flip:
                aug._check_flip(dataset)
        return aug

    def _check_flip(self, dataset) -> None:
        name = dataset if isinstance(dataset, str) else getattr(dataset, "name", "")
        base = (name or "").lower()
        for d in DIGIT_DATASETS:
            if base == d or base.startswith(d + "-"):
                raise ConfigError(f"augmentation 'flip' on {name}: a mirrored digit/character is another "
                                  "(or no) class, so flips add label noise; drop 'flip' or write 'flip:force'")

    @property
    def active(self) -> bool:
        return any((self.crop, self.flip, self.translate, self.rotate, self.cutout, self.noise))

    @property
    def spec(self) -> str:
        parts = []
        for name in OPS:
            v = getattr(self, name)
            if v:
                parts.append("flip" if name == "flip" else f"{name}:{v:g}")
        return ",".join(parts) or "none"

    def __repr__(self) -> str:
        return f"BatchAugment({self.spec!r})"

    # ------------------------------------------------------------------------------ the pipeline
    def geometric(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Crop, flip (exact on uint8) and translate/rotate (float) on raw pixels."""
        if self.crop and self.flip:
            x = random_crop_flip(x, self.crop, generator)
        elif self.crop:
            x = random_crop(x, self.crop, generator)
        elif self.flip:
            x = random_flip(x, generator)
        if self.translate or self.rotate:
            x = random_affine(x, self.translate or 0.0, self.rotate or 0.0, generator)
        return x

    def photometric(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Cutout and noise, on the normalised float batch."""
        if self.cutout:
            x = cutout(x, self.cutout, generator)
        if self.noise:
            x = gaussian_noise(x, self.noise, generator)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply the whole pipeline to a batch (uint8 stays uint8 unless translate/rotate/cutout/noise run)."""
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        x = self.geometric(x, g)
        if self.cutout or self.noise:
            x = self.photometric(x if x.is_floating_point() else x.float(), g)
        return x


# ----------------------------------------------------------------------------------------- the ops
# Random parameters are always drawn on the CPU generator, then moved: the draws (and so the batches)
# do not depend on the device.

def _crop_offsets(x: torch.Tensor, pad: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    b = x.shape[0]
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    return oy, ox


def _flip_mask(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    return (torch.rand(x.shape[0], generator=generator) < p).to(x.device)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` and crop ``H x W`` back at a per-sample offset in ``[0, 2*pad]`` (both axes).

    ``unfold`` makes a zero-copy view ``[B, C, 2p+1, 2p+1, H, W]`` of every possible crop of the
    padded batch; indexing it with ``(b, :, oy_b, ox_b)`` copies just the chosen ones. Keeps shape/dtype.
    """
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    oy, ox = _crop_offsets(x, pad, generator)
    windows = F.pad(x, (pad, pad, pad, pad)).unfold(2, h, 1).unfold(3, w, 1)
    return windows[torch.arange(b, device=x.device), :, oy, ox]


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror left-right the samples where a Bernoulli(p) mask is set: one ``gather`` on the width axis
    with per-sample column order (reversed where the mask is set)."""
    mask = _flip_mask(x, generator, p)
    cols = torch.arange(x.shape[3], device=x.device)
    cols = torch.where(mask[:, None], cols.flip(0), cols)  # [B, W]
    return x.gather(3, cols[:, None, None, :].expand_as(x))


def random_crop_flip(x: torch.Tensor, pad: int, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """``random_flip(random_crop(x))`` in one ``gather`` (same random draws, same result, ~25 % faster)."""
    if pad <= 0:
        return random_flip(x, generator, p)
    b, c, h, w = x.shape
    oy, ox = _crop_offsets(x, pad, generator)
    mask = _flip_mask(x, generator, p)
    hp, wp = h + 2 * pad, w + 2 * pad
    cols = torch.arange(w, device=x.device)
    cols = torch.where(mask[:, None], cols.flip(0), cols) + ox[:, None]  # [B, W]
    rows = (torch.arange(h, device=x.device)[None, :] + oy[:, None]) * wp  # [B, H]
    flat = (rows[:, :, None] + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    xp = F.pad(x, (pad, pad, pad, pad)).view(b, c, hp * wp)
    return xp.gather(2, flat).view(b, c, h, w)


def random_affine(x: torch.Tensor, translate: float, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate by U(-deg, deg) and shift by U(-t, t) of the size, per sample, in one ``grid_sample`` pass.

    ``affine_grid`` works in normalised coordinates ([-1, 1] spans the image), so a shift of a fraction
    ``t`` of the width is ``2 t``. Outside pixels are zero (black). Returns float32.
    """
    b = x.shape[0]
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(degrees)
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * (2 * translate)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    xf = x if x.is_floating_point() else x.float()
    grid = F.affine_grid(theta.to(device=x.device, dtype=xf.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(xf, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``size x size`` square centred at a uniform random pixel of each sample (mask arithmetic)."""
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=generator).to(x.device)
    cx = torch.randint(0, w, (b,), generator=generator).to(x.device)
    lo = size // 2
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= (cy[:, None] - lo)) & (ys < (cy[:, None] - lo + size))  # [B,H]
    in_x = (xs >= (cx[:, None] - lo)) & (xs < (cx[:, None] - lo + size))  # [B,W]
    keep = ~(in_y[:, :, None] & in_x[:, None, :])  # [B,H,W]
    return x * keep[:, None].to(x.dtype)


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``x + sigma * N(0, 1)``; on CUDA the noise comes from a device generator seeded from ``generator``."""
    if x.device.type == "cpu":
        return x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    g = torch.Generator(device=x.device).manual_seed(seed)
    return x + sigma * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
