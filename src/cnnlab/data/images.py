"""Image files: decoding with PIL, header scans, the size/channel choice and statistics of a folder of photos.

Shared by the formats that read a user's own images (image folders, VOC, COCO); imports only the bottom.
"""

from __future__ import annotations

import collections
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.arrays import channel_stats
from cnnlab.errors import DataError

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def open_image(path: Path):
    from PIL import Image

    return Image.open(path)


def decode_image(path: str | os.PathLike, size: tuple[int, int], channels: int) -> torch.Tensor:
    """Decode ``path`` to uint8 ``[C, H, W]`` (``size`` = (H, W), bilinear resize when it differs)."""
    from PIL import Image

    try:
        with open_image(Path(path)) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises these for corrupt files
        raise DataError(f"{path}: unreadable image ({e})") from None
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def scan_images(paths: list[Path]) -> list[tuple[tuple[int, int], str] | None]:
    """``((H, W), mode)`` of each image from its header, ``None`` when it cannot be opened."""
    from PIL import Image

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(((im.size[1], im.size[0]), im.mode))
        except Exception:
            out.append(None)
    return out


def pick_size(size, infos) -> tuple[int, int]:
    """``size`` as ``(H, W)``, or the most common size among the readable images."""
    if size is not None:
        hw = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(v) for v in size)
        if len(hw) != 2 or min(hw) < 1:
            raise DataError(f"size must be an int or (H, W) of positive ints, got {size}")
        return hw  # type: ignore[return-value]
    return collections.Counter(i[0] for i in infos if i is not None).most_common(1)[0][0]


def pick_channels(channels, infos) -> int:
    """1 when every readable image is grayscale (or ``channels`` says so), else 3."""
    if channels is None:
        return 1 if all(i[1] in GRAY_MODES for i in infos if i is not None) else 3
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    return int(channels)


def read_images(paths: list[Path], size: tuple[int, int], channels: int) -> tuple[torch.Tensor, list[int]]:
    """Decode + resize (bilinear) ``paths`` into uint8 ``[N, C, H, W]``; also the indices that failed."""
    out = torch.zeros((len(paths), channels, *size), dtype=torch.uint8)
    failed = []
    for i, p in enumerate(paths):
        try:
            out[i] = decode_image(p, size, channels)
        except DataError:
            failed.append(i)
    return out, failed


def sample_stats(paths: list[Path], size, channels: int, k: int = 256, seed: int = 0):
    """Per-channel mean/std of up to ``k`` of ``paths`` (a seeded sample), e.g. the training split's."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(paths), generator=g)[:k].tolist()
    images, failed = read_images([paths[i] for i in pick], size, channels)
    keep = [i for i in range(len(pick)) if i not in set(failed)]
    return channel_stats(images[keep])


def scale_boxes(boxes: torch.Tensor, old: tuple[int, int], new: tuple[int, int]) -> torch.Tensor:
    """xyxy boxes of an ``old`` (H, W) image moved to a ``new`` (H, W) resize of it (clamped to the image)."""
    (h0, w0), (h, w) = old, new
    b = boxes.double() * torch.tensor([w / w0, h / h0] * 2, dtype=torch.float64)
    lim = torch.tensor([w, h, w, h], dtype=torch.float64)
    return torch.minimum(b.clamp_min(0), lim).to(torch.float32)


def skip_warning(where, skipped: list) -> None:
    if skipped:
        warnings.warn(f"{where}: skipped {len(skipped)} unreadable or missing image(s), e.g. {skipped[0]}",
                      UserWarning, stacklevel=3)


def png_bytes(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
