"""A next-word neural language model whose by-product is the word vectors (Bengio et al. 2003).

"A Neural Probabilistic Language Model" (Bengio, Ducharme, Vincent & Jauvin, JMLR 2003): the
last ``n`` words predict the next one, and the first layer -- a table ``C`` of word vectors
shared by every position -- is the embedding the lecture is after. For target ``w_t``::

    x = [e_{w_{t-n}}; ...; e_{w_{t-1}}]                      (n d; a word before the sentence start: zeros)
    a = tanh(H x + b)                                         (hidden_dim)
    s_w = u_w . a + c_w                                       (the score of word w)

trained with negative sampling (``loss='sgns'``: ``-log sigma(s_t) - sum_k log sigma(-s_{n_k})``,
``K`` noise words per target from the unigram^0.75 distribution, as word2vec; Bengio et al. used
the full softmax, ``loss='full_softmax'``: ``-log softmax(s)_t``, ``O(V)`` per word). The paper's
optional direct connections from ``x`` to the scores are left out.

Corpus, vocabulary, subsampling and noise words are word2vec's (``rl_repr.data.text``); the
batch of a step is ``rows x updates`` runs of ``positions_per_row`` consecutive kept positions,
each with its ``n`` predecessors (:class:`NextWordBatches`). Optimisation: Adam
(``optax.scale_by_adam``) on the mean loss of each update over the global batch, every
parameter dense (tables included), at ``language_model.learning_rate`` times word2vec's linear
decay (the rate that comes with the batch, divided by ``alpha``). Under a per-device driver the
gradients are summed across devices, so every device count gives the same result.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rl_repr.data.text.batches import PAD_SENTENCE, AliasTable, EpochStream, SkipGramBatches

__all__ = ["LanguageModelState", "NextWordBatches", "next_word_batch", "init_language_model",
           "language_model_loss", "make_language_model_step"]


# ============================================================================ batches
def next_word_batch(stream: EpochStream, start: int, *, rows: int, positions_per_row: int, context: int,
                    noise: AliasTable, negatives: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``rows * positions_per_row`` consecutive kept positions from ``start`` as targets, with their
    ``context`` predecessors in the same sentence.

    Returns ``targets [R, T]``, ``target_mask [R, T]`` (inside the epoch), ``history [R, T, n]``
    (oldest first), ``history_mask [R, T, n]`` (same sentence, inside the epoch) and
    ``negatives [R, T, K]``.
    """
    count = stream.num_positions
    positions = start + np.arange(rows * positions_per_row).reshape(rows, positions_per_row)
    inside = positions < count
    target_pos = np.where(inside, positions, count)                              # padding entry: index M
    history_pos = target_pos[..., None] - np.arange(context, 0, -1)              # [R, T, n]
    history_pos = np.where(history_pos >= 0, history_pos, count)
    sentence = stream.sentence_ids[target_pos]
    same = (stream.sentence_ids[history_pos] == sentence[..., None]) & (sentence[..., None] != PAD_SENTENCE)
    return {"targets": stream.ids[target_pos], "target_mask": inside,
            "history": stream.ids[history_pos], "history_mask": same & inside[..., None],
            "negatives": noise.sample(rng, (rows, positions_per_row, negatives))}


class NextWordBatches(SkipGramBatches):
    """:class:`~rl_repr.data.text.batches.SkipGramBatches`' epochs and steps, with next-word batches:
    ``window`` is the number of preceding words ``n`` and ``negatives_shape`` ``(T, K)``."""

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        """The global batch of ``step``: each array ``[rows, updates, ...]``."""
        epoch, step_in_epoch = self.locate(step)
        batch = next_word_batch(self.stream(epoch), step_in_epoch * self.positions_per_step,
                                rows=self.updates * self.rows, positions_per_row=self.positions_per_row,
                                context=self.window, noise=self.noise, negatives=self.negatives_shape[-1],
                                rng=np.random.default_rng([self.seed, epoch, 3, step_in_epoch]))
        return {name: np.swapaxes(array.reshape(self.updates, self.rows, *array.shape[1:]), 0, 1)
                for name, array in batch.items()}


# ============================================================================ model
@flax.struct.dataclass
class LanguageModelState:
    """``step`` (updates taken), ``input_vectors`` ``C`` ``[V, d]`` (the embeddings kept),
    ``output_vectors`` ``u`` ``[V, hidden]``, ``params`` (``hidden_kernel [n d, hidden]``,
    ``hidden_bias [hidden]``, ``output_bias [V]``) and Adam's ``opt_state`` of all of them."""

    step: jax.Array
    input_vectors: jax.Array
    output_vectors: jax.Array
    params: Any
    opt_state: Any

    def trainable(self) -> dict:
        return {"input_vectors": self.input_vectors, "output_vectors": self.output_vectors, **self.params}


def init_language_model(key: jax.Array, vocab_size: int, dim: int, context: int, hidden_dim: int) -> LanguageModelState:
    """``C ~ U[-1/d, 1/d)`` (word2vec's), ``u = 0``, ``c = 0``, ``H`` LeCun-normal, ``b = 0``."""
    input_key, hidden_key = jax.random.split(key)
    params = {"hidden_kernel": jax.nn.initializers.lecun_normal()(hidden_key, (context * dim, hidden_dim)),
              "hidden_bias": jnp.zeros((hidden_dim,)), "output_bias": jnp.zeros((vocab_size,))}
    tables = {"input_vectors": jax.random.uniform(input_key, (vocab_size, dim), jnp.float32, -1.0 / dim, 1.0 / dim),
              "output_vectors": jnp.zeros((vocab_size, hidden_dim), jnp.float32)}
    return LanguageModelState(step=jnp.zeros((), jnp.int32), params=params,
                              opt_state=optax.scale_by_adam().init({**tables, **params}), **tables)


def language_model_loss(trainable: dict, batch: dict[str, jax.Array], loss: str) -> tuple[jax.Array, jax.Array]:
    """``(sum of the per-target losses, number of targets)`` of a batch (module docstring).

    ``batch``: ``targets``/``target_mask`` ``[..., T]``, ``history``/``history_mask`` ``[..., T, n]``,
    ``negatives [..., T, K]``.
    """
    history = trainable["input_vectors"][batch["history"]] * batch["history_mask"][..., None]
    x = history.reshape(*history.shape[:-2], -1)                                  # [..., T, n d]
    a = jnp.tanh(x @ trainable["hidden_kernel"] + trainable["hidden_bias"])
    u, c = trainable["output_vectors"], trainable["output_bias"]
    if loss == "full_softmax":
        logits = a @ u.T + c
        per_target = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    else:
        words = jnp.concatenate([batch["targets"][..., None], batch["negatives"]], axis=-1)  # [..., T, 1 + K]
        scores = jnp.einsum("...h,...jh->...j", a, u[words]) + c[words]
        signs = jnp.where(jnp.arange(words.shape[-1]) == 0, 1.0, -1.0)
        per_target = -jnp.sum(jax.nn.log_sigmoid(signs * scores), axis=-1)
    mask = batch["target_mask"].astype(per_target.dtype)
    return jnp.sum(mask * per_target), jnp.sum(mask)


def make_language_model_step(*, loss: str, learning_rate: float, alpha: float):
    """``per_device_step(state, batch, axis_name) -> (state, metrics)`` for the drivers.

    ``batch`` arrays are ``[rows, updates, ...]`` with ``learning_rate [rows, updates]`` (word2vec's
    decayed ``alpha``); each of the ``updates`` Adam steps uses ``learning_rate * lr / alpha``.
    Metrics: ``loss`` (mean per target), ``pairs`` (targets) and the last ``learning_rate``.
    """
    adam = optax.scale_by_adam()

    def update(state: LanguageModelState, batch: dict[str, jax.Array], axis_name: str | None):
        local_count = jnp.sum(batch["target_mask"])
        count = local_count if axis_name is None else jax.lax.psum(local_count, axis_name)

        def objective(trainable):  # this device's share of the global mean
            total, _ = language_model_loss(trainable, batch, loss)
            return total / jnp.maximum(count, 1), total

        (_, total), grads = jax.value_and_grad(objective, has_aux=True)(state.trainable())
        if axis_name is not None:
            grads, total = jax.lax.psum((grads, total), axis_name)
        directions, opt_state = adam.update(grads, state.opt_state)
        lr = learning_rate * batch["learning_rate"][0] / alpha
        new = jax.tree.map(lambda p, d: p - lr * d, state.trainable(), directions)
        tables = {name: new.pop(name) for name in ("input_vectors", "output_vectors")}
        return state.replace(step=state.step + 1, params=new, opt_state=opt_state, **tables), (total, count, lr)

    def per_device_step(state: LanguageModelState, batch: dict[str, jax.Array], axis_name: str | None):
        by_update = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batch)  # [updates, rows, ...]
        state, (totals, counts, rates) = jax.lax.scan(lambda s, b: update(s, b, axis_name), state, by_update)
        return state, {"loss": jnp.sum(totals) / jnp.maximum(jnp.sum(counts), 1), "pairs": jnp.sum(counts),
                       "learning_rate": rates[-1]}

    return per_device_step
