"""Attributes of the made-up characters, known by construction: descriptions for zero-shot learning.

Zero-shot recognition (Lampert, Nickisch & Harmeling 2009, "Learning To Detect Unseen Object
Classes by Between-Class Attribute Transfer") needs each class described by attributes -- "cats
have four legs and pointed ears" -- that hold for every image of the class. The made-up
characters of :mod:`rl_repr.data.images.stroke_characters` are each one pen trajectory, so their
attributes can be measured on the trajectory itself (the template's Catmull-Rom curves, before
any hand's jitter) rather than annotated. Each attribute is a yes/no property with a fixed
threshold (set near the median of 1,000 classes, so each splits the classes roughly in half):

* ``several_strokes``: two or three strokes (the pen was lifted); ``three_strokes``: three;
* ``closed_loop``: a stroke crosses itself or ends within 25% of the height of its start;
* ``strokes_cross``: two different strokes cross (not merely meet where one starts);
* ``wide``: width / height above 0.55; ``long_path``: path length above 1.7 heights;
* ``curvy``: total turning of the path above 220 degrees;
* ``top_heavy`` / ``left_heavy``: the path's centre of mass lies above / left of the centre of
  its bounding box;
* ``symmetric``: mirrored left-right about its box's centre line, the path lies within 0.12
  heights of itself on average (``symmetry_error``).

Some are easy to see (width, loops), others subtle (strokes that merely touch look like one).
"""
from __future__ import annotations

import functools

import numpy as np

from rl_repr.core.recipes import launch_arguments
from rl_repr.data.images.stroke_characters import _catmull_rom, stroke_templates

__all__ = ["ATTRIBUTES", "class_attributes", "dataset_class_attributes", "trajectory_measurements"]

ATTRIBUTES = ("several_strokes", "three_strokes", "closed_loop", "strokes_cross", "wide", "long_path", "curvy",
              "top_heavy", "left_heavy", "symmetric")
_LOOP_CLOSURE = 0.25     # end-to-start distance (in heights) that closes a loop
_WIDE = 0.55             # width / height
_LONG_PATH = 1.7         # path length / height
_CURVY_DEGREES = 220.0   # total absolute turning
_SYMMETRIC = 0.12        # mean mirror distance / height


def _segments_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[n, m]`` bool: segment ``i`` of polyline ``a`` properly crosses segment ``j`` of ``b``
    (their interiors intersect: each segment's ends lie strictly on opposite sides of the other)."""
    p, r = a[:-1, None], (a[1:] - a[:-1])[:, None]
    q, s = b[None, :-1], (b[1:] - b[:-1])[None]

    def cross(u, v):
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    denominator = cross(r, s)
    safe = np.where(np.abs(denominator) < 1e-12, 1.0, denominator)
    t, u = cross(q - p, s) / safe, cross(q - p, r) / safe
    eps = 1e-6
    return (np.abs(denominator) >= 1e-12) & (t > eps) & (t < 1 - eps) & (u > eps) & (u < 1 - eps)


def _self_crossing(curve: np.ndarray) -> bool:
    crossings = _segments_cross(curve, curve)
    return bool(np.any(np.triu(crossings, k=2)))  # adjacent segments share an end, never cross


def trajectory_measurements(template: list[np.ndarray]) -> dict[str, float]:
    """The raw measurements of one template (strokes of ``[n, 2]`` control points, ``y`` down)."""
    curves = [_catmull_rom(points) for points in template]
    joined = np.concatenate(curves)
    low, high = joined.min(axis=0), joined.max(axis=0)
    width, height = np.maximum(high - low, 1e-9)
    steps = [np.diff(c, axis=0) for c in curves]
    lengths = [np.linalg.norm(s, axis=1) for s in steps]
    midpoints = np.concatenate([(c[1:] + c[:-1]) / 2 for c in curves])
    weights = np.concatenate(lengths)
    centre_of_mass = (weights[:, None] * midpoints).sum(axis=0) / max(weights.sum(), 1e-12)
    headings = [np.arctan2(s[:, 1], s[:, 0]) for s in steps]
    turning = sum(float(np.abs(np.angle(np.exp(1j * np.diff(h)))).sum()) for h in headings)
    mirrored = joined * np.array([-1.0, 1.0]) + np.array([low[0] + high[0], 0.0])
    nearest = np.sqrt(((mirrored[:, None] - joined[None]) ** 2).sum(-1)).min(axis=1)
    loop = any(_self_crossing(c) or np.linalg.norm(c[-1] - c[0]) < _LOOP_CLOSURE * height for c in curves)
    crossing = any(np.any(_segments_cross(a, b)) for i, a in enumerate(curves) for b in curves[i + 1:])
    return {"strokes": float(len(template)), "closed_loop": float(loop), "strokes_cross": float(crossing),
            "aspect": float(width / height), "path_length": float(sum(map(np.sum, lengths)) / height),
            "turning_degrees": float(np.degrees(turning)),
            "centre_of_mass_y": float((centre_of_mass[1] - (low[1] + high[1]) / 2) / height),
            "centre_of_mass_x": float((centre_of_mass[0] - (low[0] + high[0]) / 2) / height),
            "symmetry_error": float(nearest.mean() / height)}


@functools.lru_cache(maxsize=8)
def class_attributes(num_classes: int, seed: int = 0) -> np.ndarray:
    """``[num_classes, len(ATTRIBUTES)]`` bool: the attributes of the classes of
    ``render_stroke_characters(num_classes, ..., seed=seed)`` (any size, jitter or warp: the
    classes are the same trajectories). Read-only, cached."""
    rows = []
    for template in stroke_templates(num_classes, seed):
        m = trajectory_measurements(template)
        rows.append([m["strokes"] >= 2, m["strokes"] >= 3, m["closed_loop"] > 0, m["strokes_cross"] > 0,
                     m["aspect"] > _WIDE, m["path_length"] > _LONG_PATH, m["turning_degrees"] > _CURVY_DEGREES,
                     m["centre_of_mass_y"] < 0, m["centre_of_mass_x"] < 0, m["symmetry_error"] < _SYMMETRIC])
    attributes = np.asarray(rows, bool)
    attributes.setflags(write=False)
    return attributes


def dataset_class_attributes(dataset: str) -> np.ndarray:
    """:func:`class_attributes` of the classes of a ``'characters[:classes=..,seed=..,...]'`` dataset
    name (``rl_repr.data.images.sources``; the size, images per class and warp do not matter)."""
    name, _, options = dataset.partition(":")
    if name != "characters":
        raise ValueError(f"dataset {dataset!r} has no known attributes; use 'characters:...' (made-up characters).")
    args = launch_arguments(options, "dataset 'characters'",
                            values={"classes": int, "images": int, "size": int, "warp": float, "seed": int})
    return class_attributes(args.get("classes", 100), args.get("seed", 0))
