"""A MoCo config small enough to train a few steps in a test."""
from rl_repr.moco.config import moco_defaults


def tiny_moco_config(**overrides):
    """128 synthetic 8x8 images, batch 64 (2 steps an epoch, 2 epochs), a queue of 2 batches (it
    wraps around), shuffled batch norm in 8 groups of 8, the cosine momentum schedule."""
    c = moco_defaults()
    c.dataset = "synthetic"
    c.synthetic_examples = 128
    c.synthetic_shape = (8, 8, 3)
    c.model.update(depth=18, width_multiplier=0.0625, small_image_stem=True)
    c.head.update(num_layers=2, output_dim=16)
    c.batch_size = 64
    c.queue_size = 128
    c.key_bn_groups = 8
    c.key_momentum = 0.9
    c.key_momentum_schedule = "cosine"
    c.epochs = 2.0
    c.base_lr = 0.03  # the paper's; at 0.12 the 1/16-width encoder amplifies rounding between drivers
    c.augment.update(crop_area=(0.5, 1.0), blur_prob=0.0)
    c.checkpoint_every_steps = 2
    c.log_every_steps = 1
    c.baselines = False
    c.knn_k = 5
    c.update_from_flattened_dict(overrides)
    return c
