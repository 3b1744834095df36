"""Data for rl_repr: images (``rl_repr.data.images``) and text (``rl_repr.data.text``).

Importing this package, or either subpackage, is cheap: neither TensorFlow nor scikit-learn is
imported until a dataset that needs it is loaded (only ``rl_repr.data.images.tfds`` ever
imports TensorFlow, inside its functions).

    from rl_repr.data.images import augment, digits, sources, tfds
    from rl_repr.data.text import vocab, batches
"""
