"""Zero-shot recognition of made-up characters from their descriptions (Lampert et al. 2009, DAP).

    python -m rl_repr.main --config=configs/zero_shot_characters.py --workdir=/tmp/zero_shot
    python -m rl_repr.main --config=configs/zero_shot_characters.py:jigsaw ...   # another pretext encoder

``configs/pretext_characters.py`` (inpainting with random-region masks, whose frozen h scored best
of the pretext tasks in ``experiments/compare_pretext.py``, unless the launch argument names other
tasks, with the same tokens) with the last 20 of the 100 character classes held out: the encoder
is pretrained on the images of the other 80 only, and the frozen-encoder report covers those 80.
Then each held-out class is known only by its 10 yes/no attributes, measured on its pen
trajectory (``rl_repr.data.images.character_attributes``: strokes, loops, crossings, width, path
length, curviness, where the ink sits, symmetry). Attribute classifiers (logistic regression on
the frozen h) are fitted on the 80 seen classes' training images; every image of the 20 unseen
classes is given the unseen class whose description is most probable
(``rl_repr.evaluation.zero_shot``). ``results.json``: ``zero_shot_accuracy`` against
``zero_shot_chance`` (1/20) and against ``one_shot_accuracy`` (20-way 1-shot episodes of the same
unseen images and features: one labelled image per class instead of a description), for h, the
encoder at random initialisation (``random_init_``) and raw pixels (``raw_pixels_``).
"""
import os

from rl_repr.core.recipes import load_config_file


def get_config(arg: str | None = None):
    c = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretext_characters.py"),
                         arg or "inpainting,random_region")
    c.zero_shot.update(unseen_classes=20, episodes=600)
    return c
