"""Pretext tasks on made-up handwritten characters at 32x32: one task, or several at once.

    python -m rl_repr.main --config=configs/pretext_characters.py:rotation --workdir=/tmp/rotation
    python -m rl_repr.main --config=configs/pretext_characters.py:inpainting,random_region ...
    python -m rl_repr.main --config=configs/pretext_characters.py:multi ...      # all four tasks
    python -m rl_repr.main --config=configs/pretext_characters.py:jigsaw,runlocal ...  # a smoke run

Launch tokens: the task(s) -- ``rotation``, ``relative_position``, ``jigsaw``, ``inpainting``
(any combination: one shared encoder, one head each, the losses summed) or ``multi`` for all
four -- and for inpainting the mask, ``central`` (default), ``random_block`` or
``random_region``.

Data: 100 made-up character classes x 40 images, drawn at 32x32 (``'characters:...'``,
generated offline: each class a random pen trajectory, each image another hand's version of it);
every 5th image of each class is a test image (800), labels are used only by the frozen-encoder
probes. 32 pixels leave room for a 3x3 grid of 8-pixel patches with gaps (relative position) and
for 3x3 cells of 10 pixels with 8-pixel tiles (jigsaw). Encoder: ResNet-18 at 1/8 width with the
small-image stem (h: 64-d); AdamW 2e-3, batch 128, 20 epochs (500 steps).
Evaluation as SimCLR's: linear probe and kNN on the frozen h, next to raw pixels and the same
encoder at random initialisation, plus each task scored on the test images
(``experiments/compare_pretext.py`` runs them all next to SimCLR and MoCo v2).
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.pretext.config import pretext_defaults
from rl_repr.pretext.inpainting import MASK_KINDS
from rl_repr.pretext.model import TASKS


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/pretext_characters.py",
                            tokens=(*TASKS, "multi", *MASK_KINDS, "runlocal"), at_most_one=(MASK_KINDS,))
    c = pretext_defaults()
    chosen = TASKS if "multi" in args.tokens else tuple(t for t in TASKS if t in args.tokens)
    c.tasks = chosen or ("rotation",)
    masks = [t for t in args.tokens if t in MASK_KINDS]
    if masks:
        c.inpainting.mask = masks[0]
    c.dataset = "characters:classes=100,images=40,size=32"
    c.checkpoint_every_steps = 250
    c.log_every_steps = 25
    if "runlocal" in args.tokens:
        c.dataset = "characters:classes=10,images=20,size=32"
        c.model.width_multiplier = 0.0625
        c.batch_size = 32
        c.epochs = 2.0
        c.warmup_epochs = 0.5
        c.baselines = False
        c.eval_batch_size = 64
        c.knn_k = 5
    return c
