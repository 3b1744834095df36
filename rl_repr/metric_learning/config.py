"""The metric-learning config: every key, its default, and the rule it must satisfy.

Recipes in ``configs/`` (``metric_digits.py``, ``metric_lfw.py``) start from
:func:`metric_learning_defaults` and override what differs; the runner checks
:func:`metric_learning_rules` (plus the system rules) before anything compiles, so a bad value
stops the run with one sentence that names the key.
"""
from __future__ import annotations

from rl_repr.core import config as cu
from rl_repr.core import optim
from rl_repr.core.extras import require
from rl_repr.core.system import compute_dtype_rule, system_defaults
from rl_repr.data.images.class_augmentation import CLASS_AUGMENTATIONS
from rl_repr.data.images.pk_batches import EXTRA_CLASSES
from rl_repr.evaluation.few_shot import CLASSIFIERS, FEATURE_TRANSFORMS
from rl_repr.losses import DISTANCES, METRIC_LOSSES as LOSSES
from rl_repr.models import NORM_KINDS, RESNET_DEPTHS

ml_collections = require("ml_collections")

ARCHITECTURES = ("conv", "resnet")


def metric_learning_defaults() -> ml_collections.ConfigDict:
    """Semi-hard triplets on the digits, classes 0-4 trained and 5-9 held out."""
    c = system_defaults("metric_learning")
    # ---- data: training classes and the held-out classes of the one-shot benchmarks
    c.dataset = "digits"          # 'digits' (bundled) or a tfds name such as 'lfw'
    c.data_dir = ""               # tfds data dir ('' = tfds default); nothing is downloaded
    c.image_size = 0              # 0 = the dataset's own size; else resize + centre crop
    c.train_split = "train"       # training images: this split, training classes only
    c.eval_splits = ("train", "test")  # held-out images: these splits, held-out classes only
    c.eval_classes = (5, 6, 7, 8, 9)   # held-out class ids; () = use eval_every_nth_class
    c.eval_every_nth_class = 0    # >0 and eval_classes == (): hold out ids with id % n == 0
    c.min_images_per_class = 2    # training classes with fewer images are dropped
    # ---- more training classes (rl_repr.data.images.pk_batches.training_set); held-out classes untouched
    c.class_augmentation = "none"  # 'none' | 'rotations' (x4) | 'rotations_flips' (x8): new classes
    c.class_augmentation_drop = ()  # new class ids y + t * num_classes to leave out (duplicates)
    # 'none' | 'glyphs' (printed letters) | 'strokes' (made-up handwritten characters) | 'glyphs+strokes'
    c.extra_classes = "none"
    c.glyph_characters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghmnqrty"
    c.glyph_images_per_class = 100
    c.stroke_classes = 3000        # 'strokes': how many made-up handwritten characters
    c.stroke_images_per_class = 10
    c.stroke_point_jitter = 0.04   # 'strokes': how far each hand moves a control point (box fraction)
    c.stroke_warp = 0.0            # 'strokes': amplitude of each hand's smooth bend (height fraction)
    # ---- PK batches: P classes x K images (global batch P * K)
    c.classes_per_batch = 5
    c.examples_per_class = 16
    # ---- embedding network: trunk -> dense -> L2 normalisation
    c.model = ml_collections.ConfigDict(dict(
        architecture="conv", conv_widths=(32, 64, 128), global_pool=True, depth=18, width_multiplier=0.25,
        small_image_stem=True, norm="batch", num_groups=8, embedding_dim=64))
    # ---- loss
    c.loss = "semi_hard"
    c.margin = 0.2                # triplet margin (FaceNet: 0.2 on unit-norm embeddings)
    c.pair_margin = 1.0           # Siamese contrastive margin on the Euclidean distance
    c.distance = ""               # '' = the loss's paper default (rl_repr.losses.DEFAULT_DISTANCE)
    # ---- instance (exemplar) term: NT-Xent between two augmented views of each image
    #      L = metric_weight * metric loss on both views + instance_weight * NT-Xent(tau)
    c.metric_weight = 1.0         # 0 = the instance term alone (still training classes only)
    c.instance_weight = 0.0       # 0 = off: one view per image and the metric loss alone
    c.instance_temperature = 0.5  # tau of NT-Xent (SimCLR's CIFAR-10 value)
    # ---- optimisation
    c.num_steps = 1000
    c.warmup_steps = 50
    c.optimizer = "adamw"
    c.base_lr = 1e-3
    c.lr_scaling = "none"
    c.weight_decay = 1e-4
    c.momentum = 0.9
    # ---- augmentation (fields of rl_repr.data.images.augment.AugmentConfig)
    c.augment_enabled = True
    c.augment = ml_collections.ConfigDict(dict(
        crop=True, crop_area=(0.6, 1.0), crop_aspect=(0.8, 1.25), flip=False,
        color_jitter_strength=0.5, color_jitter_prob=0.8, grayscale_prob=0.0,
        blur_prob=0.0, blur_sigma=(0.1, 2.0), rotate_degrees=10.0, translate_fraction=0.0,
        cutout_prob=0.25, cutout_fraction=0.25))
    # ---- systems (and the shared keys of rl_repr.core.system)
    c.compute_dtype = "float32"
    c.global_bn = True            # per-device drivers: batch statistics over the global batch
    # ---- evaluation on the held-out classes (rl_repr.evaluation.few_shot)
    c.eval = ml_collections.ConfigDict(dict(
        n_way=5, shots=(1, 5), num_queries=15, num_episodes=600, num_pairs=3000, num_folds=10,
        recall_ks=(1, 2, 4, 8), classifier="nearest_neighbor", seed=0, trunk_features=True,
        seen_classes=True,        # also score unseen images of the training classes (other splits)
        # 'center_and_normalize': SimpleShot's (x - mu) / |x - mu|, mu = the mean feature of the
        # training images, applied to every representation scored (raw pixels too)
        feature_transform="none"))
    c.baselines = True            # raw pixels and the same network at random init
    # ---- bookkeeping
    c.log_every_steps = 50
    c.eval_every_steps = 0        # held-out one-shot monitor cadence (0 = only at the end)
    c.eval_batch_size = 512
    return c


def _eval_rules() -> list[cu.Rule]:
    return [
        cu.Rule("eval.n_way", lambda n, c: isinstance(n, int) and n >= 2, "an integer >= 2"),
        cu.Rule("eval.shots", lambda s, c: len(s) > 0 and all(isinstance(k, int) and k >= 1 for k in s),
                "a non-empty tuple of integers >= 1, e.g. (1, 5)"),
        cu.positive_int("eval.num_queries"), cu.positive_int("eval.num_episodes"),
        cu.Rule("eval.num_pairs", lambda p, c: isinstance(p, int) and p >= 2 * c.eval.num_folds,
                "an integer of at least 2 * config.eval.num_folds"),
        cu.Rule("eval.num_folds", lambda f, c: isinstance(f, int) and f >= 2, "an integer >= 2"),
        cu.Rule("eval.recall_ks", lambda ks, c: len(ks) > 0 and all(isinstance(k, int) and k >= 1 for k in ks),
                "a non-empty tuple of integers >= 1, e.g. (1, 2, 4, 8)"),
        cu.one_of("eval.classifier", CLASSIFIERS), cu.non_negative_int("eval.seed"),
        cu.one_of("eval.feature_transform", FEATURE_TRANSFORMS),
    ]


def metric_learning_rules() -> list[cu.Rule]:
    """The method's own rules and the optimizer's (the runner adds the system rules)."""
    return optim.optimizer_rules() + [
        cu.one_of("loss", LOSSES), cu.one_of("distance", ("",) + DISTANCES),
        cu.one_of("model.architecture", ARCHITECTURES), cu.one_of("model.norm", NORM_KINDS),
        cu.one_of("model.depth", RESNET_DEPTHS), cu.positive("model.width_multiplier"),
        cu.Rule("model.conv_widths", lambda w, c: len(w) > 0 and all(isinstance(x, int) and x > 0 for x in w),
                "a non-empty tuple of positive channel counts, e.g. (32, 64, 128)"),
        cu.positive_int("model.num_groups"), cu.positive_int("model.embedding_dim"),
        cu.Rule("classes_per_batch", lambda p, c: isinstance(p, int) and p >= 2,
                "an integer >= 2 (a triplet needs a negative class in the batch)"),
        cu.Rule("examples_per_class", lambda k, c: isinstance(k, int) and k >= 2,
                "an integer >= 2 (a triplet needs a positive in the batch)"),
        cu.Rule("eval_classes", lambda e, c: len(e) > 0 or c.eval_every_nth_class > 0,
                "a non-empty tuple of class ids, or () with config.eval_every_nth_class > 0"),
        cu.non_negative_int("eval_every_nth_class"),
        cu.Rule("min_images_per_class", lambda m, c: isinstance(m, int) and m >= 2, "an integer >= 2"),
        cu.Rule("eval_splits", lambda s, c: len(s) > 0, "a non-empty tuple of split names"),
        cu.one_of("class_augmentation", CLASS_AUGMENTATIONS),
        cu.Rule("class_augmentation_drop", lambda d, c: all(isinstance(i, int) and i >= 0 for i in d),
                "a tuple of non-negative class ids, e.g. (10, 21)"),
        cu.one_of("extra_classes", EXTRA_CLASSES),
        cu.Rule("glyph_characters", lambda s, c: isinstance(s, str) and len(s) > 0 and len(set(s)) == len(s)
                and not any(ch.isdigit() for ch in s),
                "a non-empty string of distinct non-digit characters (digits may be held out)"),
        cu.positive_int("glyph_images_per_class"), cu.positive_int("stroke_classes"),
        cu.positive_int("stroke_images_per_class"),
        cu.in_interval("stroke_point_jitter", 0.0, 0.5, high_inclusive=False),
        cu.in_interval("stroke_warp", 0.0, 0.5, high_inclusive=False),
        compute_dtype_rule(), cu.positive("margin"), cu.positive("pair_margin"),
        cu.non_negative("metric_weight"), cu.non_negative("instance_weight"),
        cu.positive("instance_temperature"),
        cu.Rule("metric_weight", lambda w, c: w > 0 or c.instance_weight > 0,
                "positive unless config.instance_weight is (the loss would be zero)"),
        cu.Rule("instance_weight", lambda w, c: w == 0 or c.augment_enabled,
                "0 when config.augment_enabled is False (two unaugmented views are identical)"),
        cu.positive_int("num_steps"), cu.non_negative_int("warmup_steps"),
        cu.Rule("warmup_steps", lambda w, c: w <= c.num_steps, "at most config.num_steps"),
        cu.non_negative_int("image_size"), cu.non_negative_int("eval_every_steps"), cu.positive_int("eval_batch_size"),
        *_eval_rules(),
    ]
