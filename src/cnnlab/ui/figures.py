"""Matplotlib figures as images the page can show (PNG bytes decoded to PIL), closed after use."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image


def figure_to_image(fig: Any, dpi: int = 100) -> Image.Image:
    """Render ``fig`` to a PIL image (RGBA PNG in memory) and close it, so figures never pile up."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    buf.seek(0)
    with Image.open(buf) as img:
        img.load()
        return img.copy()
