"""Made-up handwritten characters, rendered like scikit-learn's digits: as many classes as asked.

Few-shot metrics generalise to new classes when they were trained on many classes (Lake et
al. 2015, Omniglot; Vinyals et al. 2016). The bundled digits hold back five classes for
evaluation and leave five to train on, so this module invents more: each class is a random
*pen trajectory* -- one to three touching strokes, each a Catmull-Rom spline through three
to seven control points along a randomly turning pen path (:func:`stroke_templates`) -- and
each image of the class is that trajectory written again by a different hand:

* every control point moved by ``N(0, point_jitter^2)`` (the same letter, never the same line),
* the whole character rotated by ``U(-12, 12)`` degrees, sheared by ``U(-0.25, 0.25)`` and
  stretched by ``exp(U(-0.2, 0.2))`` in width,
* optionally bent by a smooth random displacement field (``warp``, off by default),
* drawn with a round pen of radius ``U(2.2, 3.8)`` pixels (the digits' thick pens),

then normalised and reduced exactly as the UCI optdigits digits were: scaled so that the longer
side of the ink fills the 32x32 box (aspect kept, centred), binarised, and each 4x4 block
replaced by its ink count (``rendered_glyphs.blocks_to_counts``: 8x8 images with values
0..16, stored as ``round(count * 255 / 16)``). A pixel is ink when its centre lies within the
pen radius of the trajectory (the exact distance to each spline segment).

Larger images (``size`` 16, 32, 64, ...: studies that need more than 8x8 pixels, such as patch
pretext tasks or deep networks) draw the same trajectories at twice the size with the pen
scaled alike, and average each 2x2 block: grey levels ``round(255 * ink fraction)`` at the
edges of the strokes, the same character classes as at 8x8.

Nothing here is a digit or was drawn from one: classes are random trajectories, so no image
of a held-out digit can leak in (a made-up class may look like a 7 now and then, as a letter
may; that is the point of training on many shapes).
"""
from __future__ import annotations

import functools

import numpy as np

from rl_repr.data.images.digits import ImageDataset, counts_to_images
from rl_repr.data.images.rendered_glyphs import blocks_to_counts

__all__ = ["render_stroke_characters", "stroke_templates", "rasterize_trajectory"]

_BITMAP = 32            # optdigits' bitmap side
_SAMPLES_PER_SPAN = 8   # spline samples between two control points (segments of ~1-3 px)


def stroke_templates(num_classes: int, seed: int) -> list[list[np.ndarray]]:
    """One random pen trajectory per class: a list of 1-3 strokes (two thirds single), each
    ``[n, 2]`` control points, ``n`` in 3..7, as ``(x, y)`` with ``y`` downwards.

    A stroke is a pen's path: it moves in steps of ``U(0.25, 0.5)`` (x scaled by 0.8:
    handwritten characters are taller than wide), turning at each control point by the
    stroke's own bend ``U(-60, 60) deg`` plus ``N(0, 40 deg)`` -- arcs, hooks, waves and
    loops rather than zigzags. A later stroke starts at a control point of an earlier one
    (strokes touch, as in a written character). A character wider than ``U(0.45, 0.9)``
    times its height is squeezed to that (the digits are taller than wide).
    """
    templates = []
    for label in range(num_classes):
        rng = np.random.default_rng((seed, 1, label))  # one stream per class
        strokes: list[np.ndarray] = []
        for _ in range(int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))):
            point = strokes[-1][rng.integers(len(strokes[-1]))] if strokes else np.zeros(2)
            heading, bend = rng.uniform(0.0, 2 * np.pi), np.deg2rad(rng.uniform(-60.0, 60.0))
            points = [point]
            for _ in range(int(rng.integers(2, 7))):
                heading += bend + rng.normal(0.0, np.deg2rad(40.0))
                point = point + rng.uniform(0.25, 0.5) * np.array([0.8 * np.cos(heading), np.sin(heading)])
                points.append(point)
            strokes.append(np.stack(points))
        # Taller than wide, as handwritten characters: squeeze x to at most U(0.45, 0.9) of
        # the height (the digits' ink spans ~6 of 8 columns and all 8 rows).
        joined = np.concatenate(strokes)
        width, height = np.ptp(joined, axis=0)
        squeeze = min(1.0, rng.uniform(0.45, 0.9) * height / max(width, 1e-6))
        templates.append([stroke * np.array([squeeze, 1.0]) for stroke in strokes])
    return templates


def _catmull_rom(points: np.ndarray) -> np.ndarray:
    """``[..., n, 2]`` control points -> ``[..., (n - 1) S + 1, 2]`` points on the spline
    through them (``S = _SAMPLES_PER_SPAN``; the ends are extended linearly)."""
    padded = np.concatenate([2 * points[..., :1, :] - points[..., 1:2, :], points,
                             2 * points[..., -1:, :] - points[..., -2:-1, :]], axis=-2)
    t = np.linspace(0.0, 1.0, _SAMPLES_PER_SPAN, endpoint=False)[:, None]
    spans = []
    for i in range(points.shape[-2] - 1):
        p0, p1, p2, p3 = (padded[..., i + j, None, :] for j in range(4))
        spans.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                            + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3))
    return np.concatenate(spans + [points[..., -1:, :]], axis=-2)


def rasterize_trajectory(strokes: list[np.ndarray], pen_radius: np.ndarray, side: int = _BITMAP) -> np.ndarray:
    """``[B, side, side]`` uint8 0/1 bitmaps of ``B`` characters drawn with round pens.

    Args:
      strokes: polylines ``[B, m, 2]`` (``(x, y)``, any scale), one array per stroke.
      pen_radius: ``[B]`` in pixels of a 32x32 box (scaled by ``side / 32``).
      side: the bitmap's side in pixels.

    Each character is scaled so that the longer side of its ink spans the box (optdigits'
    normalisation, aspect kept) and centred; a pixel is ink when its centre lies within the
    pen radius of a segment.
    """
    points = np.concatenate(strokes, axis=1)
    pen_radius = np.asarray(pen_radius) * (side / _BITMAP)
    low, high = points.min(axis=1), points.max(axis=1)                      # [B, 2]
    extent = np.maximum(np.max(high - low, axis=1), 1e-6)                   # [B]
    scale = ((side - 2 * pen_radius) / extent)[:, None, None]               # [B, 1, 1]
    offset = ((side - scale[:, 0] * (high - low)) / 2 - scale[:, 0] * low)[:, None]  # [B, 1, 2]
    centres = np.arange(side, dtype=np.float32) + 0.5
    px, py = (c.reshape(1, -1, 1) for c in np.meshgrid(centres, centres, indexing="xy"))  # [1, P, 1]
    nearest = np.full((points.shape[0], side * side), np.inf, np.float32)
    for stroke in strokes:
        line = (stroke * scale + offset).astype(np.float32)                 # [B, m, 2]
        sx, sy = line[:, None, :-1, 0], line[:, None, :-1, 1]               # segment starts [B, 1, m - 1]
        dx, dy = np.diff(line[..., 0], axis=1)[:, None], np.diff(line[..., 1], axis=1)[:, None]
        length2 = np.maximum(dx * dx + dy * dy, 1e-12)
        along = np.clip(((px - sx) * dx + (py - sy) * dy) / length2, 0.0, 1.0)  # [B, P, m - 1]
        distance2 = (px - sx - along * dx) ** 2 + (py - sy - along * dy) ** 2
        nearest = np.minimum(nearest, distance2.min(axis=-1))
    ink = nearest <= (pen_radius ** 2)[:, None]
    return ink.reshape(-1, side, side).astype(np.uint8)


def _warp(strokes: list[np.ndarray], amplitude: float, rng: np.random.Generator) -> list[np.ndarray]:
    """A smooth random displacement of every point, one field per image (a hand's own bends):

        p <- p + amplitude * h * (sum_j sin(k_xj . p / h + phi_xj), sum_j sin(k_yj . p / h + phi_yj)) / sqrt(J)

    with ``J = 3`` waves per axis, ``k ~ N(0, (2 pi)^2 I)`` (about one wavelength per character
    height ``h``) and ``phi ~ U(0, 2 pi)``. ``strokes``: ``[B, m, 2]`` arrays.
    """
    points = np.concatenate(strokes, axis=1)
    height = np.maximum(np.ptp(points[..., 1], axis=1), 1e-6)[:, None, None]      # [B, 1, 1]
    waves = rng.normal(0.0, 2 * np.pi, (points.shape[0], 1, 2, 3, 2))            # [B, 1, axis, J, 2]
    phases = rng.uniform(0.0, 2 * np.pi, (points.shape[0], 1, 2, 3))             # [B, 1, axis, J]
    warped = []
    for stroke in strokes:
        angle = np.sum(waves * stroke[:, :, None, None, :], axis=-1) / height[..., None] + phases  # [B, m, 2, J]
        warped.append(stroke + amplitude * height * np.sin(angle).sum(-1) / np.sqrt(3))
    return warped


def _write_class(template: list[np.ndarray], count: int, rng: np.random.Generator,
                 point_jitter: float, warp: float, size: int) -> np.ndarray:
    """``count`` images of one class, ``[count, size, size, 1]`` uint8: the template's control
    points jittered, the character rotated/sheared/stretched (and warped), drawn and reduced
    (optdigits' block counts at size 8, 2x2 supersampling otherwise)."""
    angle = np.deg2rad(rng.uniform(-12.0, 12.0, count))
    cos, sin = np.cos(angle), np.sin(angle)
    stretch, shear = np.exp(rng.uniform(-0.2, 0.2, count)), rng.uniform(-0.25, 0.25, count)
    # rotation @ [[stretch, shear], [0, 1]], one per image: [count, 2, 2]
    affine = np.stack([np.stack([cos * stretch, cos * shear - sin], -1),
                       np.stack([sin * stretch, sin * shear + cos], -1)], -2)
    strokes = [np.einsum("bij,bmj->bmi", affine,
                         _catmull_rom(points + rng.normal(0.0, point_jitter, (count, *points.shape))))
               for points in template]
    if warp > 0:  # (no draws when off: the images without warp stay as they were)
        strokes = _warp(strokes, warp, rng)
    pen_radius = rng.uniform(2.2, 3.8, count)
    if size == 8:
        return counts_to_images(np.stack([blocks_to_counts(b) for b in rasterize_trajectory(strokes, pen_radius)]))
    bitmaps = rasterize_trajectory(strokes, pen_radius, side=2 * size).astype(np.float32)
    coverage = bitmaps.reshape(count, size, 2, size, 2).mean(axis=(2, 4))
    return np.round(255.0 * coverage).astype(np.uint8)[..., None]


@functools.lru_cache(maxsize=4)
def _render_cached(num_classes: int, images_per_class: int, seed: int, point_jitter: float, warp: float,
                   size: int) -> tuple[np.ndarray, np.ndarray]:
    parts, labels = [], []
    for label, template in enumerate(stroke_templates(num_classes, seed)):
        rng = np.random.default_rng((seed, 2, label))  # adding classes changes no other class
        parts.append(_write_class(template, images_per_class, rng, point_jitter, warp, size))
        labels.extend([label] * images_per_class)
    images = np.concatenate(parts)
    images.setflags(write=False)
    labels_array = np.asarray(labels, np.int32)
    labels_array.setflags(write=False)
    return images, labels_array


def render_stroke_characters(num_classes: int, images_per_class: int = 20, *, seed: int = 0,
                             label_offset: int = 0, point_jitter: float = 0.04, warp: float = 0.0,
                             size: int = 8) -> ImageDataset:
    """``images_per_class`` images of each of ``num_classes`` made-up characters, ``size`` pixels square.

    ``warp`` > 0 also bends each image's trajectory by a smooth random displacement of that
    amplitude (a fraction of the character's height; :func:`_warp`). ``size`` 8 is the
    digits' format (optdigits' block counts); 16, 32, 64, ... draw the same characters larger.

    Returns an ImageDataset of ``[num_classes * images_per_class, size, size, 1]`` uint8,
    class-major, labels ``label_offset + class``. Deterministic in ``seed``; cached in memory
    (read-only arrays). About 1 ms per image on one core at size 8, ``(size / 16)^2`` ms above.
    """
    if num_classes < 1 or images_per_class < 1:
        raise ValueError(f"render_stroke_characters: num_classes={num_classes} and images_per_class="
                         f"{images_per_class} must both be at least 1.")
    if not 0.0 <= point_jitter < 0.5:
        raise ValueError(f"render_stroke_characters: point_jitter={point_jitter}; pass a value in [0, 0.5) "
                         "(a fraction of the character's box).")
    if not 0.0 <= warp < 0.5:
        raise ValueError(f"render_stroke_characters: warp={warp}; pass a value in [0, 0.5) "
                         "(a fraction of the character's height).")
    if size != 8 and (size < 8 or size % 8):
        raise ValueError(f"render_stroke_characters: size={size}; pass 8 (the digits' format) or a larger "
                         "multiple of 8 such as 32.")
    images, labels = _render_cached(int(num_classes), int(images_per_class), int(seed), float(point_jitter),
                                    float(warp), int(size))
    return ImageDataset(images=images, labels=(labels + label_offset).astype(np.int32),
                        num_classes=label_offset + num_classes, name="stroke_characters")
