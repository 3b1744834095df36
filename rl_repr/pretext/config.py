"""The pretext method's config: every key, its default, and the rule it must satisfy.

The encoder, data and evaluation keys are SimCLR's (``rl_repr.simclr.config``), with SimCLR's
rules, so a pretext run and a SimCLR run on the same data are scored by the same code; only
the tasks and their settings are new. ``config.tasks`` names one task or several (one shared
encoder, one head each, the loss a weighted sum: Doersch & Zisserman 2017).
"""
from __future__ import annotations

from rl_repr.core import config as cfg
from rl_repr.core.extras import require
from rl_repr.pretext.inpainting import MASK_KINDS
from rl_repr.pretext.model import TASKS
from rl_repr.simclr.config import simclr_defaults, simclr_rules

ml_collections = require("ml_collections")

# SimCLR keys a pretext task has no use for: its head, loss, representation caching, augmentation
_SIMCLR_ONLY = ("head", "temperature", "loss_chunk_size", "gradient_cache_chunks", "evaluate_head", "augment")
_MAX_PERMUTATIONS = 362_880  # 9!


def pretext_defaults() -> ml_collections.ConfigDict:
    """Rotation prediction on made-up characters at 32x32 with a small ResNet; recipes override these."""
    c = simclr_defaults()
    for key in _SIMCLR_ONLY:
        del c[key]
    c.method = "pretext"
    c.dataset = "characters:classes=100,images=40,size=32"
    c.model.update(depth=18, width_multiplier=0.125, small_image_stem=True, explicit_conv_gradients="off")
    # ---- the tasks: any of rl_repr.pretext.model.TASKS, and their weights in the summed loss
    c.tasks = ("rotation",)
    c.task_weights = ()             # one weight per task; () = 1 for each
    c.head_hidden_dim = 256         # the MLP heads' hidden width
    c.rotation = ml_collections.ConfigDict(dict(all_four=False))  # True: all 4 turns of every image
    # Doersch et al. 2015: patches `gap` pixels apart, each moved by up to `jitter` pixels per axis
    c.relative_position = ml_collections.ConfigDict(dict(patch_size=8, gap=3, jitter=1))
    # Noroozi & Favaro 2016: 3x3 cells of side // 3 pixels, a tile_size tile from each
    c.jigsaw = ml_collections.ConfigDict(dict(tile_size=8, num_permutations=100, permutation_seed=0))
    # Pathak et al. 2016: 'central' | 'random_block' | 'random_region', about `fraction` of the area
    # (decoder_width w: transposed convolutions of 4w, 2w, w channels; at w = 32 the decoder would cost
    # several times the small encoder on a CPU)
    c.inpainting = ml_collections.ConfigDict(dict(mask="central", fraction=0.25, num_blocks=4, fill=0.5,
                                                  decoder_width=8))
    # ---- optimisation: AdamW (b1 = momentum) at a fixed rate, whatever the batch, with warmup + cosine
    c.update(batch_size=128, epochs=20.0, warmup_epochs=1.0, optimizer="adamw", base_lr=2e-3, lr_scaling="none",
             weight_decay=1e-4, momentum=0.9)
    # ---- zero-shot recognition of held-out classes (rl_repr.evaluation.zero_shot; 'characters' only):
    # the last `unseen_classes` classes are left out of pretraining and of the frozen-encoder report
    c.zero_shot = ml_collections.ConfigDict(dict(unseen_classes=0, episodes=600))
    c.baselines = True
    return c


def pretext_rules() -> list[cfg.Rule]:
    """SimCLR's rules of the shared keys, and the tasks' own (the runner adds the system rules)."""
    def distinct_tasks(tasks, _):
        return len(set(tasks)) == len(tasks)

    return [rule for rule in simclr_rules() if rule.key.split(".")[0] not in _SIMCLR_ONLY] + [
        cfg.one_of("model.explicit_conv_gradients", ("on", "off")),
        cfg.tuple_of("tasks", lambda t: t in TASKS, f"a non-empty tuple of tasks from {TASKS}"),
        cfg.Rule("tasks", distinct_tasks, "a tuple naming each task at most once"),
        cfg.Rule("task_weights", lambda w, c: len(w) in (0, len(c.tasks)) and all(x > 0 for x in w),
                 lambda c: f"() (weight 1 each) or {len(c.tasks)} weights > 0, one per task of config.tasks"),
        cfg.positive_int("head_hidden_dim"),
        cfg.Rule("rotation.all_four", lambda v, _: isinstance(v, bool), "True or False"),
        cfg.positive_int("relative_position.patch_size"), cfg.non_negative_int("relative_position.jitter"),
        cfg.Rule("relative_position.gap", lambda g, c: cfg.is_int(g) and g > 2 * c.relative_position.jitter,
                 lambda c: f"an integer > 2 x relative_position.jitter = {2 * c.relative_position.jitter}, so that "
                           "jittered patches never touch (their edges would give the position away)"),
        cfg.positive_int("jigsaw.tile_size"),
        cfg.Rule("jigsaw.num_permutations", lambda p, _: cfg.is_int(p) and 2 <= p <= _MAX_PERMUTATIONS,
                 f"an integer from 2 to {_MAX_PERMUTATIONS} (9!, every order of the 9 tiles)"),
        cfg.non_negative_int("jigsaw.permutation_seed"),
        cfg.one_of("inpainting.mask", MASK_KINDS),
        cfg.in_interval("inpainting.fraction", 0.0, 1.0, low_inclusive=False, high_inclusive=False),
        cfg.positive_int("inpainting.num_blocks"), cfg.in_interval("inpainting.fill", 0.0, 1.0),
        cfg.positive_int("inpainting.decoder_width"),
        cfg.non_negative_int("zero_shot.unseen_classes"), cfg.positive_int("zero_shot.episodes"),
        cfg.Rule("zero_shot.unseen_classes", lambda u, c: u == 0 or c.dataset.startswith("characters"),
                 "0 unless config.dataset is 'characters:...' (the classes whose attributes are known)"),
    ]
