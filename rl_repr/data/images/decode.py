"""Host-side decoding of streamed images: crops cut at the image's original resolution.

TensorFlow graph functions (they run inside ``tf.data`` maps, ``rl_repr.data.images.streaming``):

* :func:`random_views` -- SimCLR's training input: V Inception-style random crops of one
  encoded image (Szegedy et al. 2015, "Going deeper with convolutions": 8-100% of the image
  area, uniformly, aspect ratio 3/4-4/3; SimCLR Appendix A), each resized to ``size x size``;
* :func:`central_view` -- the evaluation input: the central ``fraction`` of the shorter
  side (224 of 256 for ImageNet), resized to ``size x size``.

How one image is cut (both functions)::

    shape  <- the JPEG header (tf.io.extract_jpeg_shape; nothing decoded), or the decoded PNG
    boxes  <- crop boxes [V, (y, x, h, w)] in pixels of the original image
    window <- the smallest box holding every crop box (their union's bounding box), plus a
              2-pixel margin inside the image (see _WINDOW_MARGIN)
    region <- JPEG: tf.io.decode_and_crop_jpeg(window), libjpeg decodes only that window
              (the fused decode-and-crop), with its accurate integer IDCT: the pixels of
              PIL's decode of the whole image (tested); PNG (and anything else that
              tf.io.decode_image reads): the whole image, the boxes in its coordinates
    views  <- each box sliced out and resized (tf.image.resize, bilinear with half-pixel
              centres, no antialiasing, as Inception's and SimCLR's preprocessing), rounded
              to uint8 [V, size, size, 3]

Every image comes out RGB (grey JPEGs are expanded, PNG alpha is dropped). A crop is a pure
function of its seed (:func:`random_boxes`).
"""
from __future__ import annotations

import math
from typing import Callable

from rl_repr.core.extras import require

tf = require("tensorflow")

EVAL_CROP_FRACTION = 224 / 256  # the evaluation crop of ImageNet models: 224 px of a 256 px side
# Pixels decoded around the crop boxes: libjpeg upsamples the colour planes of a window's edge
# pixels as if the image ended there, so the outermost pixels of a window may differ from a
# whole-image decode; one pixel of margin sufficed in tests, two are kept.
_WINDOW_MARGIN = 2


def random_boxes(shape: tf.Tensor, seed: tf.Tensor, *, views: int, area: tuple[float, float],
                 aspect: tuple[float, float], attempts: int) -> tf.Tensor:
    """``[views, 4]`` int32 random-resized-crop boxes ``(y, x, h, w)`` for an image of ``shape``.

    Each view draws ``attempts`` candidates: area fraction ``a ~ U[area]``, aspect ratio
    ``r = w / h`` with ``log r ~ U[log aspect]``, ``w = round(sqrt(a H W r))``,
    ``h = round(sqrt(a H W / r))``; the first that fits the image wins, at a uniform position;
    if none fits, the largest centred box whose aspect ratio is clamped to ``aspect``. This is
    torchvision's ``RandomResizedCrop`` in whole pixels, and the distribution of the on-device
    crop (``rl_repr.data.images.augment_geometry.crop_box_from_uniforms``). (TensorFlow's
    ``sample_distorted_bounding_box`` draws the height uniformly instead of the area, which
    makes crops smaller.) The numbers come from one ``tf.random.stateless_uniform`` draw with
    ``seed`` (``[2]`` int64), so a box depends only on the image's seed and its view.
    """
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    uniforms = tf.random.stateless_uniform([views, 2 * attempts + 2], seed=seed)
    areas = height * width * (area[0] + (area[1] - area[0]) * uniforms[:, :attempts])
    log_low, log_high = math.log(aspect[0]), math.log(aspect[1])
    ratios = tf.exp(log_low + (log_high - log_low) * uniforms[:, attempts:2 * attempts])
    widths, heights = tf.round(tf.sqrt(areas * ratios)), tf.round(tf.sqrt(areas / ratios))
    fits = (widths >= 1) & (widths <= width) & (heights >= 1) & (heights <= height)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1)  # the first candidate that fits (0 if none)
    found = tf.reduce_any(fits, axis=1)
    image_ratio = width / height
    fallback_w = tf.where(image_ratio > aspect[1], tf.round(height * aspect[1]), width)
    fallback_h = tf.where(image_ratio < aspect[0], tf.round(width / aspect[0]), height)
    box_h = tf.where(found, tf.gather(heights, first, batch_dims=1), fallback_h)
    box_w = tf.where(found, tf.gather(widths, first, batch_dims=1), fallback_w)
    top = tf.where(found, tf.floor(uniforms[:, -2] * (height - box_h + 1)), tf.floor((height - box_h) / 2))
    left = tf.where(found, tf.floor(uniforms[:, -1] * (width - box_w + 1)), tf.floor((width - box_w) / 2))
    return tf.cast(tf.stack([top, left, box_h, box_w], axis=1), tf.int32)


def central_box(shape: tf.Tensor, fraction: float) -> tf.Tensor:
    """``[1, 4]`` int32: the centred square whose side is ``fraction`` of the shorter side."""
    height, width = tf.cast(shape[0], tf.int32), tf.cast(shape[1], tf.int32)
    side = tf.maximum(1, tf.cast(tf.round(fraction * tf.cast(tf.minimum(height, width), tf.float32)), tf.int32))
    return tf.stack([(height - side) // 2, (width - side) // 2, side, side])[None]


def random_views(contents: tf.Tensor, seed: tf.Tensor, *, size: int, views: int, area: tuple[float, float],
                 aspect: tuple[float, float], attempts: int) -> tf.Tensor:
    """``[views, size, size, 3]`` uint8: independent random resized crops of one encoded image."""
    return _cut(contents, lambda shape: random_boxes(shape, seed, views=views, area=area, aspect=aspect,
                                                     attempts=attempts), size)


def central_view(contents: tf.Tensor, *, size: int, fraction: float = EVAL_CROP_FRACTION) -> tf.Tensor:
    """``[size, size, 3]`` uint8: the central crop of one encoded image, resized."""
    return _cut(contents, lambda shape: central_box(shape, fraction), size)[0]


def _cut(contents: tf.Tensor, boxes_of: Callable[[tf.Tensor], tf.Tensor], size: int) -> tf.Tensor:
    """Decodes what ``boxes_of(shape)`` needs of ``contents`` and resizes each box (module docstring)."""

    def from_jpeg():
        shape = tf.io.extract_jpeg_shape(contents)
        boxes = boxes_of(shape)
        top_left = tf.maximum(tf.reduce_min(boxes[:, :2], axis=0) - _WINDOW_MARGIN, 0)
        bottom_right = tf.minimum(tf.reduce_max(boxes[:, :2] + boxes[:, 2:], axis=0) + _WINDOW_MARGIN, shape[:2])
        window = tf.concat([top_left, bottom_right - top_left], axis=0)
        region = tf.io.decode_and_crop_jpeg(contents, window, channels=3, dct_method="INTEGER_ACCURATE")
        return _resize_boxes(region, boxes - tf.concat([top_left, [0, 0]], axis=0), size)

    def from_other():
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return _resize_boxes(image, boxes_of(tf.shape(image)), size)

    return tf.cond(tf.io.is_jpeg(contents), from_jpeg, from_other)


def _resize_boxes(region: tf.Tensor, boxes: tf.Tensor, size: int) -> tf.Tensor:
    """``region [h, w, 3]``, ``boxes [V, (y, x, bh, bw)]`` in its pixels -> ``[V, size, size, 3]`` uint8."""
    views = []
    for view in range(boxes.shape[0]):
        y, x, height, width = tf.unstack(boxes[view])
        resized = tf.image.resize(region[y:y + height, x:x + width], [size, size], method="bilinear")
        views.append(tf.cast(resized + 0.5, tf.uint8))  # rounded: bilinear weights keep it in [0, 255]
    return tf.stack(views)
