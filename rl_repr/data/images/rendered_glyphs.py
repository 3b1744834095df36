"""Printed characters rendered like scikit-learn's digits: extra classes, generated, never downloaded.

The bundled digits (UCI optdigits; Alpaydin & Kaynak 1998) were made from 32x32 binary
bitmaps of handwritten digits, each 4x4 block replaced by its count of ink pixels, giving
8x8 images with 17 grey levels (0..16). ``render_glyphs`` makes images of letters the same
way from the fonts matplotlib ships (DejaVu, STIX, Computer Modern): the glyph is drawn large
with a random stroke width, put through a random affine map (rotation, shear, aspect), cut to
its ink, scaled to fill the 32x32 box (keeping its aspect ratio), binarised, and block-counted:

    count[i, j] = sum_{u, v < 4} bitmap[4 i + u, 4 j + v]    in 0..16,  i, j < 8

then stored as ``round(count * 255 / 16)`` uint8, exactly as ``rl_repr.data.images.digits`` stores
the digits. Each character is a class; its images differ by font and jitter, as handwriting
differs by writer. No digit is rendered, so held-out digits cannot leak in. A metric trained
on these many classes has to learn many ways in which shapes differ (the class-count remedy of
few-shot learning; Lake et al. 2015, Omniglot).
"""
from __future__ import annotations

import functools
import os

import numpy as np

from rl_repr.core.extras import require
from rl_repr.data.images.digits import ImageDataset, counts_to_images

__all__ = ["DEFAULT_CHARACTERS", "glyph_fonts", "render_glyphs", "blocks_to_counts"]

# Upper-case letters plus the lower-case ones whose shape, once scaled to fill the box,
# differs from their capital (c/C, o/O, s/S ... would be duplicate classes; i/j/l are bars).
DEFAULT_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghmnqrty"
# Latin text faces among matplotlib's bundled fonts (the symbol / display faces are left out).
_FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf", "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf")
_CANVAS = 128      # drawing canvas (pixels); the font is drawn at _FONT_SIZE
_FONT_SIZE = 72
_BITMAP = 32       # optdigits' bitmap side
_BLOCK = 4         # optdigits' block side: 32 / 4 = 8 pixels per side


def glyph_fonts() -> tuple[str, ...]:
    """Paths of the bundled fonts used (those of ``_FONT_FILES`` that this matplotlib ships)."""
    matplotlib = require("matplotlib", extra="data")  # its fonts; Pillow comes with it

    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    fonts = tuple(os.path.join(folder, f) for f in _FONT_FILES if os.path.exists(os.path.join(folder, f)))
    if not fonts:
        raise FileNotFoundError(f"no bundled fonts found in {folder}; reinstall matplotlib.")
    return fonts


def blocks_to_counts(bitmap: np.ndarray, block: int = _BLOCK) -> np.ndarray:
    """optdigits' reduction: binary ``[H, W]`` -> ``[H / block, W / block]`` ink counts in 0..block^2."""
    h, w = bitmap.shape
    if h % block or w % block:
        raise ValueError(f"blocks_to_counts: bitmap {bitmap.shape} is not a multiple of the block {block}.")
    return bitmap.reshape(h // block, block, w // block, block).astype(np.int64).sum(axis=(1, 3))


@functools.lru_cache(maxsize=None)
def _font(path: str):
    from PIL import ImageFont  # noqa: PLC0415 (PIL comes with matplotlib)

    return ImageFont.truetype(path, _FONT_SIZE)  # parsing a font file is the slow part: once each


def _render_one(character: str, font_path: str, rng: np.random.Generator, max_rotate_degrees: float,
                max_shear: float) -> np.ndarray:
    """One jittered 32x32 binary bitmap of ``character`` (uint8 0/1), ink filling the box."""
    from PIL import Image, ImageDraw  # noqa: PLC0415 (PIL comes with matplotlib)

    font = _font(font_path)
    canvas = Image.new("L", (_CANVAS, _CANVAS), 0)
    stroke = int(rng.integers(0, 5))  # extra outline pixels at the 72-px size: thin to heavy pens
    ImageDraw.Draw(canvas).text((_CANVAS / 2, _CANVAS / 2), character, fill=255, font=font, anchor="mm",
                                stroke_width=stroke, stroke_fill=255)
    angle = np.deg2rad(rng.uniform(-max_rotate_degrees, max_rotate_degrees))
    shear = rng.uniform(-max_shear, max_shear)
    aspect = np.exp(rng.uniform(-0.2, 0.2))
    # PIL's AFFINE maps output (x, y) to input A (x - c) + c: A is the inverse of the jitter.
    forward = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ \
        np.array([[aspect, shear], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)
    centre = np.array([_CANVAS / 2, _CANVAS / 2])
    shift = centre - inverse @ centre
    canvas = canvas.transform(canvas.size, Image.Transform.AFFINE,
                              (inverse[0, 0], inverse[0, 1], shift[0], inverse[1, 0], inverse[1, 1], shift[1]),
                              resample=Image.Resampling.BILINEAR)
    ink = np.asarray(canvas) > 127
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return np.zeros((_BITMAP, _BITMAP), np.uint8)
    crop = canvas.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
    scale = _BITMAP / max(crop.size)  # the longer side fills the box, as optdigits' normalisation
    size = (max(1, round(crop.size[0] * scale)), max(1, round(crop.size[1] * scale)))
    small = np.asarray(crop.resize(size, Image.Resampling.BILINEAR)) > 127
    bitmap = np.zeros((_BITMAP, _BITMAP), np.uint8)
    top, left = (_BITMAP - size[1]) // 2, (_BITMAP - size[0]) // 2
    bitmap[top:top + size[1], left:left + size[0]] = small
    return bitmap


@functools.lru_cache(maxsize=4)
def _render_cached(characters: str, images_per_class: int, seed: int, max_rotate_degrees: float,
                   max_shear: float) -> tuple[np.ndarray, np.ndarray]:
    fonts = glyph_fonts()
    images, labels = [], []
    for label, character in enumerate(characters):
        rng = np.random.default_rng((seed, label))  # one stream per class: adding classes changes no other
        for _ in range(images_per_class):
            bitmap = _render_one(character, fonts[int(rng.integers(len(fonts)))], rng, max_rotate_degrees,
                                 max_shear)
            images.append(blocks_to_counts(bitmap))
            labels.append(label)
    out = counts_to_images(np.stack(images))
    labels_array = np.asarray(labels, np.int32)
    labels_array.setflags(write=False)
    return out, labels_array


def render_glyphs(characters: str = DEFAULT_CHARACTERS, images_per_class: int = 100, *, seed: int = 0,
                  label_offset: int = 0, max_rotate_degrees: float = 12.0, max_shear: float = 0.25
                  ) -> ImageDataset:
    """``images_per_class`` rendered 8x8 images of each character; one class per character.

    Returns an ImageDataset of ``[len(characters) * images_per_class, 8, 8, 1]`` uint8
    (``round(count * 255 / 16)``, ``count`` in 0..16), class-major, labels
    ``label_offset + index of the character``. Deterministic in ``seed`` (font, stroke,
    rotation, shear and aspect are drawn per image); cached in memory (read-only arrays).
    """
    if not characters or len(set(characters)) != len(characters):
        raise ValueError(f"render_glyphs: characters={characters!r}; pass a non-empty string without repeats.")
    if any(c.isdigit() for c in characters):
        raise ValueError(f"render_glyphs: characters={characters!r} contains digits; they could be "
                         "held-out classes of the digits benchmark, so render letters only.")
    if images_per_class < 1:
        raise ValueError(f"render_glyphs: images_per_class={images_per_class}; pass at least 1.")
    images, labels = _render_cached(characters, images_per_class, seed, float(max_rotate_degrees),
                                    float(max_shear))
    return ImageDataset(images=images, labels=(labels + label_offset).astype(np.int32),
                        num_classes=label_offset + len(characters), name="rendered_glyphs")
