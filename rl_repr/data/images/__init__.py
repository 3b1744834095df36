"""Image data: sources, generators, on-device augmentation and batch indices.

* where images come from: ``sources`` (a config's dataset -> train/test in memory),
  ``digits`` (scikit-learn's bundled digits, and ``ImageDataset``), ``tfds`` (prepared
  TensorFlow Datasets, never downloaded), ``synthetic`` (generated smoke-test images);
* made-up classes for metric learning: ``rendered_glyphs`` (printed letters),
  ``stroke_characters`` (made-up handwritten characters), ``class_augmentation`` (rotated and
  mirrored classes), ``pk_batches`` (class splits and P x K batches);
* ``augment`` (SimCLR's augmentation on device, with ``augment_color`` and
  ``augment_geometry``) and ``batching`` (epochs of a seeded permutation, per process).
"""
