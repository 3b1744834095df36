"""The supervised trainer's config: every key, its default, and the rule it must satisfy.

Recipes (``configs/supervised_*.py``) and study sweeps (``configs/studies/*.py``) start from
:func:`supervised_defaults`; the runner checks :func:`supervised_rules` (plus the system rules)
before anything compiles, so a bad value stops the run with one sentence that names the key.
"""
from __future__ import annotations

import dataclasses

from rl_repr.adversarial import ATTACKS
from rl_repr.core import config as cfg
from rl_repr.core import optim
from rl_repr.core.extras import require
from rl_repr.core.system import compute_dtype_rule, system_defaults
from rl_repr.data.images import augment
from rl_repr.models import ACTIVATIONS, CIFAR_NORM_KINDS, CIFAR_SHORTCUTS, MLP_NORMS, NORM_KINDS, RESNET_DEPTHS
from rl_repr.supervised.data import TABULAR_DATASETS

ml_collections = require("ml_collections")

MODEL_KINDS = ("cifar_resnet", "resnet", "mlp")


def supervised_defaults() -> ml_collections.ConfigDict:
    """A CIFAR-style ResNet-20 with cross-entropy on the bundled digits; recipes override these."""
    c = system_defaults("supervised")
    # ---- data (rl_repr.supervised.data)
    c.dataset = "digits"          # an image set of rl_repr.data.images.sources, or 'tabular:<name>'
    c.data_dir = ""               # tfds data dir ('' = tfds default); nothing is downloaded
    c.image_size = 0              # tfds: 0 = the dataset's own size; else resize
    c.synthetic_examples = 256    # 'synthetic': generated images (tests, smoke runs)
    c.synthetic_shape = (32, 32, 3)
    c.standardize_inputs = False  # subtract the training mean, divide by its std, per feature
    c.label_noise = 0.0           # symmetric noise: this share of training labels set to another class
    c.label_fraction = 1.0        # train on a class-balanced share of the labelled examples
    # ---- model (rl_repr.supervised.model)
    c.model = ml_collections.ConfigDict(dict(
        kind="cifar_resnet",      # 'cifar_resnet' (He et al. 6n+2) | 'resnet' (18..152) | 'mlp'
        depth=20, width_multiplier=1.0, residual=True, norm="batch", num_groups=8,
        shortcut="A",             # cifar_resnet: 'A' zero-padded identity | 'B' projection
        small_image_stem=True,    # resnet: 3x3 stem without max-pool
        hidden=(256, 256), activation="relu",  # mlp (norm: 'none' | 'batch' | 'layer')
        # resnet: start from a torchvision state dict saved as .npz (rl_repr.models.torchvision_import)
        torchvision_weights=""))
    # ---- loss
    c.label_smoothing = 0.0       # eps: target 1 - eps on the label, eps / (k - 1) elsewhere
    # distillation (Hinton et al. 2015): a finished supervised run's workdir ('' = none)
    c.teacher = ml_collections.ConfigDict(dict(workdir="", temperature=4.0, alpha=0.9))
    # adversarial training: train on attacked inputs (weight 1: Madry et al.; 0.5: Goodfellow et al.)
    c.adversarial = ml_collections.ConfigDict(dict(
        attack="none", epsilon=0.1, steps=7, step_size=0.0, random_start=True, weight=1.0))
    # ---- greedy layer-wise pretraining of an MLP's blocks as autoencoders (rl_repr.supervised.greedy)
    c.greedy_pretraining = ml_collections.ConfigDict(dict(enabled=False, steps_per_layer=500, learning_rate=1e-3,
                                                          batch_size=64))
    # ---- optimisation
    c.batch_size = 128
    c.epochs = 10.0
    c.warmup_epochs = 0.0
    c.optimizer = "sgd"
    c.base_lr = 0.1
    c.lr_scaling = "linear"       # 'linear': base * B / 256 | 'sqrt' | 'none'
    c.weight_decay = 1e-4
    c.momentum = 0.9
    c.end_lr = 0.0
    # ---- augmentation (fields of rl_repr.data.images.augment.AugmentConfig), images only
    c.augment_enabled = False
    c.augment = _augment_defaults()
    # ---- systems (and the shared keys of rl_repr.core.system)
    c.compute_dtype = "float32"
    c.global_bn = True            # per-device drivers: batch statistics over the global batch
    # ---- evaluation
    c.eval_every_steps = 0        # train/test error monitor cadence (0 = only at the end)
    c.monitor_train_examples = 1000  # training examples the monitor scores (0 = all)
    c.eval_batch_size = 500
    c.calibration_bins = 15       # expected calibration error's bins
    # accuracy under attack at the end: attacks ('fgsm', 'pgd') x epsilons (pixel range [0, 1])
    c.eval_attacks = ()
    c.eval_epsilons = ()
    c.eval_pgd_steps = 20
    return c


def _augment_defaults() -> ml_collections.ConfigDict:
    """The ``AugmentConfig`` fields a recipe sets: with ``augment_enabled``, shifts of up to 1/8 of
    a side (He et al.'s 4-pixel translations of a 32-pixel image) and nothing else."""
    chosen = augment.AugmentConfig(crop=False, crop_area=(0.6, 1.0), crop_aspect=(0.8, 1.25), flip=False,
                                   color_jitter_strength=0.0, color_jitter_prob=0.0, grayscale_prob=0.0,
                                   translate_fraction=0.125)
    internal = ("crop_max_attempts", "color_jitter_random_order", "fill_value")
    return ml_collections.ConfigDict({k: v for k, v in dataclasses.asdict(chosen).items() if k not in internal})


def _attack_rules() -> list[cfg.Rule]:
    return [
        cfg.one_of("adversarial.attack", ("none",) + ATTACKS), cfg.non_negative("adversarial.epsilon"),
        cfg.positive_int("adversarial.steps"),
        cfg.Rule("adversarial.step_size", lambda s, c: s >= 0, "a number >= 0 (0 = 2.5 * epsilon / steps)"),
        cfg.in_interval("adversarial.weight", 0.0, 1.0),
        cfg.Rule("adversarial.attack", lambda a, c: a == "none" or not c.dataset.startswith("tabular"),
                 "'none' for tabular data (attacks need a pixel range)"),
        cfg.Rule("eval_attacks", lambda a, c: not a or not c.dataset.startswith("tabular"),
                 "() for tabular data (attacks need a pixel range)"),
        cfg.tuple_of("eval_attacks", lambda a: a in ATTACKS, f"a tuple of {ATTACKS}", non_empty=False),
        cfg.tuple_of("eval_epsilons", lambda e: isinstance(e, (int, float)) and 0 <= e <= 1,
                     "a tuple of numbers in [0, 1] (pixel range)", non_empty=False),
        cfg.Rule("eval_epsilons", lambda e, c: bool(e) == bool(c.eval_attacks),
                 "non-empty exactly when config.eval_attacks is"),
        cfg.positive_int("eval_pgd_steps"),
    ]


def supervised_rules() -> list[cfg.Rule]:
    """The supervised trainer's own rules and the optimizer's (the runner adds the system rules)."""
    m = "model."
    return optim.optimizer_rules() + _attack_rules() + [
        cfg.Rule("dataset", lambda d, c: not d.startswith("tabular") or d.partition(":")[2] in TABULAR_DATASETS,
                 f"an image dataset or 'tabular:<name>' with a name in {TABULAR_DATASETS}"),
        cfg.in_interval("label_noise", 0.0, 1.0, high_inclusive=False),
        cfg.in_interval("label_fraction", 0.0, 1.0, low_inclusive=False),
        cfg.one_of(m + "kind", MODEL_KINDS),
        cfg.Rule(m + "depth", lambda d, c: c.model.kind != "cifar_resnet" or (d >= 8 and (d - 2) % 6 == 0),
                 "6n + 2 for a cifar_resnet (8, 14, 20, 32, 44, 56, 110)"),
        cfg.Rule(m + "depth", lambda d, c: c.model.kind != "resnet" or d in RESNET_DEPTHS,
                 f"one of {RESNET_DEPTHS} for a resnet"),
        cfg.positive(m + "width_multiplier"), cfg.positive_int(m + "num_groups"),
        cfg.one_of(m + "shortcut", CIFAR_SHORTCUTS),
        cfg.Rule(m + "norm", lambda n, c: n in {"cifar_resnet": CIFAR_NORM_KINDS, "resnet": NORM_KINDS,
                                                "mlp": MLP_NORMS}[c.model.kind],
                 lambda c: f"one of {dict(cifar_resnet=CIFAR_NORM_KINDS, resnet=NORM_KINDS, mlp=MLP_NORMS).get(c.model.kind)} "
                 f"for a {c.model.kind}"),
        cfg.tuple_of(m + "hidden", lambda w: cfg.is_int(w) and w > 0, "a tuple of positive widths, () = linear",
                     non_empty=False),
        cfg.one_of(m + "activation", tuple(ACTIVATIONS)),
        cfg.Rule(m + "torchvision_weights", lambda p, c: not p or (c.model.kind == "resnet" and p.endswith(".npz")),
                 "'' or the path of an .npz state dict, with model.kind='resnet'"),
        cfg.in_interval("label_smoothing", 0.0, 1.0),
        cfg.Rule("label_smoothing", lambda e, c: e == 0 or not c.teacher.workdir,
                 "0 when distilling (config.teacher.workdir is set; its loss has its own hard-label term)"),
        cfg.positive("teacher.temperature"), cfg.in_interval("teacher.alpha", 0.0, 1.0),
        cfg.Rule("greedy_pretraining.enabled", lambda e, c: not e or (c.model.kind == "mlp" and c.model.hidden),
                 "False unless model.kind is 'mlp' with hidden layers"),
        cfg.positive_int("greedy_pretraining.steps_per_layer"), cfg.positive("greedy_pretraining.learning_rate"),
        cfg.positive_int("greedy_pretraining.batch_size"),
        cfg.positive_int("batch_size"), cfg.positive("epochs"), cfg.non_negative("warmup_epochs"),
        cfg.Rule("warmup_epochs", lambda w, c: w <= c.epochs, "at most config.epochs"),
        cfg.non_negative("end_lr"), compute_dtype_rule(),
        cfg.non_negative_int("eval_every_steps"), cfg.non_negative_int("monitor_train_examples"),
        cfg.positive_int("eval_batch_size"), cfg.positive_int("calibration_bins"),
        cfg.positive_int("synthetic_examples"), cfg.non_negative_int("image_size"),
    ]
