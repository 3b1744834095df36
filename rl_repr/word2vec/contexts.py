"""Which context predicts a word (``config.context``): the batches, state and update of each.

The word-embedding lecture's contexts, on one corpus pipeline, one config and one evaluation:

* ``'skipgram'`` -- a nearby word (skip-gram, ``rl_repr.word2vec.step``);
* ``'cbow'`` -- the words on both sides, averaged (``rl_repr.word2vec.cbow``);
* ``'language_model'`` -- the last ``window`` words, in order (Bengio et al. 2003,
  ``rl_repr.word2vec.language_model``).
"""
from __future__ import annotations

import jax

from rl_repr.data.text.batches import SkipGramBatches
from rl_repr.word2vec.cbow import make_cbow_update
from rl_repr.word2vec.language_model import NextWordBatches, init_language_model, make_language_model_step
from rl_repr.word2vec.step import init_state, make_per_device_step


def batches_class(config) -> type[SkipGramBatches]:
    """Skip-gram's batches (also CBOW's: the same windows), or next-word batches."""
    return NextWordBatches if config.context == "language_model" else SkipGramBatches


def initial_state(config, vocab_size: int):
    """The tables (and, for the language model, its layers and Adam's state) at step 0."""
    key = jax.random.PRNGKey(config.seed)
    if config.context == "language_model":
        return init_language_model(key, vocab_size, config.dim, config.window, config.language_model.hidden_dim)
    return init_state(key, vocab_size, config.dim)


def per_device_step(config):
    """``(state, batch, axis_name) -> (state, metrics)`` of ``config.context``."""
    if config.context == "language_model":
        return make_language_model_step(loss=config.loss, learning_rate=config.language_model.learning_rate,
                                        alpha=config.alpha)
    update = make_cbow_update(window=config.window) if config.context == "cbow" else None
    return make_per_device_step(window=config.window, loss=config.loss, negatives_per_pair=config.negatives,
                                loss_impl=config.loss_impl, table_sync=config.table_sync, update=update)
