"""SimCLR's config: every key, its default, and the rule it must satisfy.

Recipes in ``configs/`` start from :func:`simclr_defaults` and override what differs; the
runner checks :func:`simclr_rules` (plus the system rules) before anything compiles, so a bad
value stops the run with one sentence that names the key.
"""
from __future__ import annotations

from rl_repr.core import config as cfg
from rl_repr.core import optim
from rl_repr.core.extras import require
from rl_repr.core.system import compute_dtype_rule, system_defaults
from rl_repr.models import HEAD_NORMS, NORM_KINDS, RESNET_DEPTHS

ml_collections = require("ml_collections")


def simclr_defaults() -> ml_collections.ConfigDict:
    """SimCLR v1 on ImageNet-style data (Chen et al. 2020); recipes override these."""
    c = system_defaults("simclr")
    # ---- data
    # 'digits', 'characters:...', 'synthetic', a prepared tfds set ('cifar10', 'imagenet2012'), or
    # 'folder:DIR' with images in DIR/<split>/<class>/<file> (JPEG or PNG, any size)
    c.dataset = "digits"
    c.data_dir = ""               # tfds data dir ('' = tfds default); nothing is downloaded
    c.train_split = "train"       # tfds split / folder the encoder trains on
    c.eval_split = "test"         # labelled split scored (imagenet2012: 'validation'; an ImageNet folder: 'val')
    c.image_size = 0              # 0 = the dataset's own size; else the side images are resized to
    # stream the images from disk (rl_repr/data/images/streaming.py): 'on', 'off', or 'auto' = a
    # folder or tfds set whose training split, decoded at image_size, exceeds stream_above_gb per
    # process; generated sets (digits, characters, synthetic) are always in memory
    c.streaming = "auto"
    c.stream_above_gb = 4.0
    c.data_workers = 0            # streaming: images decoded in parallel per process (0: tf.data decides)
    c.prefetch_batches = 2        # streaming: batches ready on each host (plus one placed on the devices)
    c.shuffle_buffer = 10_000     # streaming a tfds set: records shuffled in this window (folders: exactly)
    c.synthetic_examples = 256    # 'synthetic': generated images (tests, smoke runs)
    c.synthetic_shape = (32, 32, 3)
    # ---- encoder and head
    c.model = ml_collections.ConfigDict(dict(
        depth=50, width_multiplier=1.0, small_image_stem=False, norm="batch", residual=True,
        zero_init_last_norm=False, num_groups=32,
        # convolution gradients written as plain convolutions ('on'/'off'; 'auto' = on with
        # gradient_cache_chunks on a CPU, where XLA runs JAX's own inside loops ~10x slower;
        # rl_repr/models/explicit_gradient_conv.py)
        explicit_conv_gradients="auto"))
    # head.norm after each dense layer: 'batch' (SimCLR), or 'layer'/'none' for a head with no
    # batch-dependent layer (exact representation caching with a group-norm encoder)
    c.head = ml_collections.ConfigDict(dict(num_layers=2, hidden_dim=0, output_dim=128, norm="batch"))
    # ---- loss
    c.temperature = 0.1
    c.loss_chunk_size = 0         # >0: chunked NT-Xent, never materialising [2N, 2N]
    # >0: representation caching (GradCache): encode the 2N views in this many chunks, so
    # activation memory is that of one chunk (rl_repr/simclr/gradient_cache.py)
    c.gradient_cache_chunks = 0
    # ---- optimisation
    c.batch_size = 4096
    c.epochs = 100.0
    c.warmup_epochs = 10.0
    c.optimizer = "lars"
    c.base_lr = 0.3
    c.lr_scaling = "linear"       # 'linear': base*B/256, 'sqrt': base*sqrt(B)
    c.weight_decay = 1e-6
    c.momentum = 0.9
    # ---- augmentation (fields of rl_repr.data.images.augment.AugmentConfig)
    c.augment = ml_collections.ConfigDict(dict(
        crop=True, crop_area=(0.08, 1.0), crop_aspect=(3 / 4, 4 / 3), flip=True,
        color_jitter_strength=1.0, color_jitter_prob=0.8, grayscale_prob=0.2,
        blur_prob=0.5, blur_sigma=(0.1, 2.0), rotate_degrees=0.0, translate_fraction=0.0,
        cutout_prob=0.0, cutout_fraction=0.25))
    # ---- systems (and the shared keys of rl_repr.core.system)
    c.compute_dtype = "float32"   # 'bfloat16': bf16 compute, float32 params
    c.global_bn = True            # per-device drivers: batch statistics over the global batch
    # ---- bookkeeping
    c.eval_every_steps = 0        # kNN monitor cadence (0 = only at the end)
    c.knn_k = 20
    c.evaluate_head = False       # also linear-probe g(h) (projection-head ablation)
    c.baselines = True            # raw pixels and random-init encoder, same protocol
    c.finetune_fractions = ()     # e.g. (0.01, 0.1): semi-supervised protocol of Table 7
    c.finetune_steps = 500
    c.label_subsets_dir = ""      # the 1%/10% image-id lists ('' = <workdir>/label_subsets, drawn once)
    c.eval_batch_size = 512
    # the linear classifier on the frozen h of a streaming run: SGD (Nesterov) or LARS on the
    # features sharded over the devices, LR base_lr x B/256, cosine (SimCLR's linear evaluation at
    # scale, rl_repr/evaluation/linear_classifier.py); in-memory runs fit the full-batch L-BFGS probe
    c.linear_eval = ml_collections.ConfigDict(dict(
        epochs=90.0, batch_size=4096, optimizer="sgd", base_lr=0.1, weight_decay=0.0))
    return c


def simclr_rules() -> list[cfg.Rule]:
    """SimCLR's own rules and the optimizer's (the runner adds the system rules)."""
    return optim.optimizer_rules() + [
        cfg.one_of("model.norm", NORM_KINDS), cfg.one_of("model.depth", RESNET_DEPTHS),
        cfg.one_of("model.explicit_conv_gradients", ("auto", "on", "off")), compute_dtype_rule(),
        cfg.positive_int("batch_size"), cfg.positive("epochs"), cfg.non_negative("warmup_epochs"),
        cfg.Rule("warmup_epochs", lambda w, c: w <= c.epochs, "at most config.epochs"),
        cfg.positive("temperature"),
        cfg.positive("model.width_multiplier"), cfg.positive_int("model.num_groups"),
        cfg.non_negative_int("head.num_layers"), cfg.non_negative_int("head.hidden_dim"),
        cfg.positive_int("head.output_dim"), cfg.one_of("head.norm", HEAD_NORMS),
        cfg.divides("loss_chunk_size", "batch_size", "dense"),
        cfg.Rule("gradient_cache_chunks", lambda k, c: k == 0 or c.batch_size % k == 0,
                 "0 (off) or a divisor of config.batch_size (and of the per-device batch)"),
        cfg.non_negative_int("gradient_cache_chunks"),
        cfg.non_negative_int("eval_every_steps"), cfg.positive_int("knn_k"),
        cfg.positive_int("eval_batch_size"), cfg.positive_int("synthetic_examples"),
        cfg.non_negative_int("image_size"),
        cfg.Rule("finetune_fractions", lambda f, c: all(0 < x <= 1 for x in f),
                 "a tuple of fractions in (0, 1], e.g. (0.01, 0.1)"),
        cfg.positive_int("finetune_steps"),
        cfg.Rule("train_split", lambda v, c: isinstance(v, str) and v != "", "a split name, such as 'train'"),
        cfg.Rule("eval_split", lambda v, c: isinstance(v, str) and v != "",
                 "a labelled split name, such as 'test' or 'validation'"),
        cfg.one_of("streaming", ("auto", "on", "off")), cfg.positive("stream_above_gb"),
        cfg.non_negative_int("data_workers"), cfg.positive_int("prefetch_batches"),
        cfg.positive_int("shuffle_buffer"),
        cfg.positive("linear_eval.epochs"),
        cfg.positive_int("linear_eval.batch_size"), cfg.one_of("linear_eval.optimizer", ("sgd", "lars")),
        cfg.positive("linear_eval.base_lr"), cfg.non_negative("linear_eval.weight_decay"),
    ]
