"""word2vec's update: skip-gram losses over a batch of pairs, sparse SGD, sharded.

Mikolov et al. 2013 ("Efficient Estimation of Word Representations in Vector Space",
arXiv:1301.3781; "Distributed Representations of Words and Phrases", arXiv:1310.4546).
Two tables: input vectors ``e`` (the embeddings we keep, gensim's ``wv``) and
output vectors ``w``. Each pair is a context word ``c`` predicting a target ``t`` in the
target's dynamic window (word2vec.c's orientation: the *context* word's input vector is
trained, the target's output vector scores it)::

    sgns:          l = -log sigma(w_t . e_c) - sum_{k=1}^{K} log sigma(-w_{n_k} . e_c),  n_k ~ P_n
    full_softmax:  l = -log softmax(W e_c)_t                     (p(t | c))

One SGD update on a batch from :mod:`rl_repr.data.text.batches` (``R`` rows of ``T``
targets and their ``P`` context slots):

1. gather only the rows it needs -- ``e`` of the contexts, ``w`` of the targets and the
   noise words -- so the work scales with the batch, not with ``V``;
2. differentiate the *summed* loss of the real pairs with respect to those rows (plain
   SGD on the sum, as word2vec takes one step per pair); the loss is
   ``rl_repr.losses.sgns_loss`` vmapped over the pairs (``loss_impl='vmap'``), the same
   sum computed group by group (``'fused'``, several times faster on CPU), or its gradients
   in closed form over each target's window slots (``'slots'``, the default:
   :mod:`rl_repr.word2vec.slots`, a fraction of the others' compile and run time);
3. scatter-add the row gradients times ``-lr``; the rate comes with the batch
   (:func:`learning_rates`: ``alpha`` decayed linearly to ``min_alpha``), so the compiled
   step depends only on shapes and can be reused across runs (JAX's compilation cache).

Negatives (``negative_sharing``): ``pair`` draws ``K`` noise words for every pair
(word2vec.c exactly); ``window`` draws ``K`` per target, shared by the contexts of its
window (Ji et al. 2016's HogBatch: matrix products, quality kept); ``row`` shares ``S = G K``
among a whole row and averages the loss over the ``G`` groups of ``K`` (an unbiased estimate
of the same objective; its noise scores are one ``[n, d] x [d, S]`` product per group).

Sharding: the rows of a batch are split over the ``data`` mesh axis and both tables are
*replicated*. Each device computes its rows' gradients; under ``shard_map``/``pmap`` the
``(ids, row gradient)`` pairs are all-gathered and every device applies all of them with
the same scatter-adds, so the replicas stay identical and the traffic is
``O(global batch x d)`` instead of a dense ``O(V x d)`` all-reduce. Replicated rather than
split by rows because word frequencies are Zipfian: the few hot rows (and most noise
draws) would all land on one device's shard, and a row split needs an all-to-all for
every gather; split rows only when ``2 V d`` floats do not fit on a device. The ``jit``
driver leaves the same choice to XLA. Full softmax touches every output row, so its
output-table gradient is all-reduced densely. That is ``table_sync='update'``; with
``table_sync='step'`` the replicas instead drift apart for a step's ``M`` updates and then
add up their changes (Hogwild, :func:`make_per_device_step`): one dense all-reduce per step,
the fastest way to use every core of a CPU.
"""
from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np

from rl_repr import losses
from rl_repr.data.text import batches as text_batches
from rl_repr.word2vec import slots as word2vec_slots
from rl_repr.word2vec.config import LOSS_IMPLEMENTATIONS, LOSSES, NEGATIVE_SHARING, TABLE_SYNC


# ============================================================================ state
@flax.struct.dataclass
class Word2VecState:
    """Both embedding tables and the update counter (which drives the learning rate).

    Attributes:
      step: int32 scalar, SGD updates taken.
      input_vectors: ``[V, d]`` float32, ``e``: the word embeddings that are kept.
      output_vectors: ``[V, d]`` float32, ``w``: the vectors that score targets and noise.
    """

    step: jax.Array
    input_vectors: jax.Array
    output_vectors: jax.Array


def init_state(key: jax.Array, vocab_size: int, dim: int) -> Word2VecState:
    """gensim 4's initialisation: ``e ~ U[-1/d, 1/d)``, ``w = 0``.

    word2vec.c draws ``e`` from half that range. gensim's range is the peer's we compare
    with, and on its Wikipedia excerpt it scored higher here (WordSim-353 Spearman +0.01
    to +0.04 over seeds 0-2, SimLex-999 about +0.01).
    """
    input_vectors = jax.random.uniform(key, (vocab_size, dim), jnp.float32, -1.0 / dim, 1.0 / dim)
    return Word2VecState(step=jnp.zeros((), jnp.int32), input_vectors=input_vectors,
                         output_vectors=jnp.zeros((vocab_size, dim), jnp.float32))


def learning_rates(updates: np.ndarray, *, alpha: float, min_alpha: float, total_updates: int) -> np.ndarray:
    """word2vec's linear decay per update index: ``alpha - (alpha - min_alpha) min(u / total, 1)``.

    word2vec.c and gensim decay by the fraction of words processed; updates here cover
    equal numbers of positions, so the fraction of updates is the same schedule.
    """
    progress = np.minimum(np.asarray(updates, np.float64) / max(total_updates, 1), 1.0)
    return (alpha - (alpha - min_alpha) * progress).astype(np.float32)


# ============================================================================ losses
def negatives_shape(negative_sharing: str, *, window: int, positions_per_row: int,
                    negatives_per_pair: int, shared_negatives: int) -> tuple[int, ...]:
    """Noise ids per batch row: ``window`` ``(T, K)``, ``pair`` ``(P, K)``, ``row`` ``(S,)``."""
    if negative_sharing == "window":
        return (positions_per_row, negatives_per_pair)
    if negative_sharing == "pair":
        return (text_batches.pairs_per_row(window, positions_per_row), negatives_per_pair)
    if negative_sharing == "row":
        if shared_negatives < negatives_per_pair or shared_negatives % negatives_per_pair:
            raise ValueError(f"shared_negatives={shared_negatives} must be a positive multiple of "
                             f"negatives={negatives_per_pair} (the loss averages over groups of K).")
        return (shared_negatives,)
    raise ValueError(f"negative_sharing={negative_sharing!r} is not one of {NEGATIVE_SHARING}.")


def sgns_pair_losses(target_vecs: jax.Array, context_vecs: jax.Array, noise_vecs: jax.Array, *,
                     window: int, negatives_per_pair: int) -> jax.Array:
    """Per-pair SGNS losses ``[P]`` of one row: ``rl_repr.losses.sgns_loss`` vmapped over pairs.

    Pair ``p`` is context ``c`` predicting target ``t`` (``text_batches.pair_targets``):
    ``sgns_loss(e_c, w_t, w_noise)`` -- the library's "centre" argument is the input
    vector ``e_c``. The definition the fused step (:func:`sgns_group_loss`) is tested against.

    Args:
      target_vecs: ``w_t``, output vectors of the row's targets, ``[T, d]``.
      context_vecs: ``e_c``, input vectors of the row's contexts, ``[P, d]``.
      noise_vecs: output vectors of the noise words: ``[T, K, d]`` (``window``: a target's
        ``K`` shared by its contexts), ``[P, K, d]`` (``pair``) or ``[S, d]`` (``row``;
        ``S = G K``, the loss averaged over the ``G`` groups of ``K``: an unbiased
        estimate of the loss with ``K`` negatives).
      window, negatives_per_pair: ``W`` and ``K``.
    """
    owner = text_batches.pair_targets(window, target_vecs.shape[0])
    targets = target_vecs[owner]
    if noise_vecs.ndim == 3:  # [T, K, d] or [P, K, d]; P > T always, so the length tells them apart
        per_pair_noise = noise_vecs[owner] if noise_vecs.shape[0] == target_vecs.shape[0] else noise_vecs
        return jax.vmap(lambda t, c, n: losses.sgns_loss(c, t, n))(targets, context_vecs, per_pair_noise)
    groups = noise_vecs.reshape(-1, negatives_per_pair, noise_vecs.shape[-1])

    def grouped(target, context):
        return jnp.mean(jax.vmap(lambda n: losses.sgns_loss(context, target, n))(groups))

    return jax.vmap(grouped)(targets, context_vecs)


def sgns_group_loss(context_vecs: jax.Array, output_vecs: jax.Array, mask: jax.Array,
                    shared_noise_vecs: jax.Array | None = None, noise_weight: float = 1.0) -> jax.Array:
    """Summed SGNS loss of one group of pairs (one offset), fused: one batched product.

    For each pair (context ``c``, target ``t``) with ``mask`` true::

        l = -log sigma(w_t . e_c) - a sum_k log sigma(-w_{n_k} . e_c)

    Summed over a row's groups this equals ``sum(where(mask, sgns_pair_losses(...), 0))``
    (tested); written per group because that is what XLA runs fastest on CPU: the
    contexts are a static slice, their gradient goes straight to a scatter-add, and the
    scores against a target and its noise words are one batched dot product.

    Args:
      context_vecs: ``e_c``, ``[..., n, d]``: the contexts at one offset of ``n`` targets.
      output_vecs: ``[..., n, 1 + K, d]``: each target's output vector followed by its
        ``K`` noise vectors, or ``[..., n, 1, d]`` (target only) with ``shared_noise_vecs``.
      mask: ``[..., n]`` bool, the real pairs.
      shared_noise_vecs: ``[..., S, d]``, noise words shared by the row (``row``).
      noise_weight: ``a``; ``K / S`` under ``row`` sharing, else 1.
    """
    scores = jnp.einsum("...td,...tcd->...tc", context_vecs, output_vecs)
    per_pair = -jax.nn.log_sigmoid(scores[..., 0]) - noise_weight * jnp.sum(
        jax.nn.log_sigmoid(-scores[..., 1:]), axis=-1)
    if shared_noise_vecs is not None:
        noise_scores = jnp.einsum("...td,...sd->...ts", context_vecs, shared_noise_vecs)
        per_pair -= noise_weight * jnp.sum(jax.nn.log_sigmoid(-noise_scores), axis=-1)
    return jnp.sum(jnp.where(mask, per_pair, 0.0))


def full_softmax_pair_losses(target_ids: jax.Array, context_vecs: jax.Array, output_vectors: jax.Array,
                             *, window: int) -> jax.Array:
    """Per-pair ``-log softmax(W e_c)_t``, ``[P]``, from ``skipgram_full_softmax_loss`` vmapped.

    Costs ``O(P V d)``: for small vocabularies and comparisons.

    Args:
      target_ids: ``[T]`` the batch's target word ids.
      context_vecs: ``e_c``, ``[P, d]``, one row per (target, context) pair.
      output_vectors: ``W``, ``[V, d]``.
      window: the skip-gram window the pairs were made with.
    """
    targets = target_ids[text_batches.pair_targets(window, target_ids.shape[0])]
    return jax.vmap(lambda c, t: losses.skipgram_full_softmax_loss(c[None], output_vectors, t[None]))(
        context_vecs, targets)


# ============================================================================ step
def fused_sgns_gradients(output_vectors: jax.Array, context_vecs: jax.Array, batch: dict[str, jax.Array], *,
                         window: int, negatives_per_pair: int):
    """Summed SGNS loss of a batch and its row gradients, one distance group at a time.

    Args:
      output_vectors: the output table ``[V, d]``.
      context_vecs: input vectors of the batch's contexts, ``[R, P, d]``.
      batch: ``targets [R, T]``, ``pair_mask [R, P]``, ``negatives`` ``[R, T, K]``,
        ``[R, P, K]`` or ``[R, S]``.

    Returns:
      ``(loss_sum, input_updates, output_updates)``, the updates as ``(ids, gradients)``
      pairs for :func:`_scatter_add`. A target and its noise words are gathered together
      (``[R, T, 1 + K]`` ids) so each group scores them in one product.
    """
    targets, noise_ids, pair_mask = batch["targets"], batch["negatives"], batch["pair_mask"]
    contexts = batch["contexts"]
    rows, length = targets.shape
    shared_ids, noise_weight = None, 1.0
    if noise_ids.ndim == 2:  # row: [R, S]
        output_ids, shared_ids = targets[..., None], noise_ids
        noise_weight = negatives_per_pair / noise_ids.shape[-1]
    elif noise_ids.shape[1] == length:  # window: [R, T, K]
        output_ids = jnp.concatenate([targets[..., None], noise_ids], axis=-1)
    else:  # pair: [R, P, K]
        owner = text_batches.pair_targets(window, length)
        output_ids = jnp.concatenate([targets[:, owner, None], noise_ids], axis=-1)
    outputs = output_vectors[output_ids]
    shared = None if shared_ids is None else output_vectors[shared_ids]
    per_pair_outputs = output_ids.shape[1] != length
    argnums = (0, 1) if shared is None else (0, 1, 3)
    loss_sum, input_updates, output_updates = 0.0, [], []
    prefix_grad = jnp.zeros_like(outputs) if not per_pair_outputs else None
    shared_grad = None if shared is None else jnp.zeros_like(shared)
    for _, first, count in text_batches.pair_layout(window, length):
        both_sides = 0.0
        for side in (first, first + count):  # offsets -k, then +k: one [n, d] x [n, 1 + K, d] product each
            span = slice(side, side + count)
            group_outputs = outputs[:, span] if per_pair_outputs else outputs[:, :count]
            loss_k, grads = jax.value_and_grad(sgns_group_loss, argnums=argnums)(
                context_vecs[:, span], group_outputs, pair_mask[:, span], shared, noise_weight)
            loss_sum += loss_k
            # Scatter each group's gradients as they are (measured faster on CPU than
            # concatenating them first); the two sides share their targets' rows.
            input_updates.append((contexts[:, span], grads[0]))
            if per_pair_outputs:
                output_updates.append((output_ids[:, span], grads[1]))
            else:
                both_sides = both_sides + grads[1]
            if shared is not None:
                shared_grad = shared_grad + grads[2]
        if not per_pair_outputs:
            prefix_grad = prefix_grad.at[:, :count].add(both_sides)
    if not per_pair_outputs:
        output_updates.append((output_ids, prefix_grad))
    if shared is not None:
        output_updates.append((shared_ids, shared_grad))
    return loss_sum, input_updates, output_updates


def make_update(*, window: int, loss: str, negatives_per_pair: int, loss_impl: str = "slots"):
    """``update(state, batch, axis_name) -> (state, (loss_sum, pairs, lr))``: one SGD update.

    ``batch`` holds this device's rows of :func:`rl_repr.data.text.batches.skipgram_batch`
    and ``learning_rate`` ``[rows]`` (the same value in every row, :func:`learning_rates`).
    For ``loss='sgns'``, ``loss_impl='vmap'`` differentiates the sum of
    :func:`sgns_pair_losses` (the library loss vmapped over pairs), ``'fused'`` the same
    sum written group by group (:func:`fused_sgns_gradients`), several times faster on CPU,
    and ``'slots'`` (the default) takes the same gradients in closed form over each
    target's window slots (:mod:`rl_repr.word2vec.slots`): about 1 s of XLA
    compilation instead of ``'fused'``'s several seconds on a small CPU, and as fast or
    faster per update.
    ``loss_sum`` and ``pairs`` (the real pairs) are totals over every device's rows.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is not one of {LOSSES}.")
    if loss_impl not in LOSS_IMPLEMENTATIONS:
        raise ValueError(f"loss_impl={loss_impl!r} is not one of {LOSS_IMPLEMENTATIONS}.")

    def pairwise_loss(context_vecs, outputs, batch):
        """The vmapped library losses of every row, summed; ``outputs``: (targets, noise) or ``W``."""
        def row(contexts, row_outputs, row_batch):
            if loss == "full_softmax":
                per_pair = full_softmax_pair_losses(row_batch["targets"], contexts, row_outputs, window=window)
            else:
                target_vecs, noise_vecs = row_outputs
                per_pair = sgns_pair_losses(target_vecs, contexts, noise_vecs, window=window,
                                            negatives_per_pair=negatives_per_pair)
            return jnp.sum(jnp.where(row_batch["pair_mask"], per_pair, 0.0))
        output_axis = None if loss == "full_softmax" else 0
        return jnp.sum(jax.vmap(row, in_axes=(0, output_axis, 0))(context_vecs, outputs, batch))

    def update(state: Word2VecState, batch: dict[str, jax.Array], axis_name: str | None):
        _check_batch(batch, window)
        contexts, targets, noise_ids = batch["contexts"], batch["targets"], batch["negatives"]
        # 1. gather only the rows this batch touches (full softmax needs all of W) and
        # 2. differentiate the summed loss with respect to those rows
        dense_output_grad = None
        if loss == "full_softmax":
            loss_sum, (context_grad, dense_output_grad) = jax.value_and_grad(pairwise_loss, argnums=(0, 1))(
                state.input_vectors[contexts], state.output_vectors, batch)
            input_updates, output_updates = [(contexts, context_grad)], []
        elif loss_impl == "slots":  # closed-form gradients, the default (fastest to compile and run)
            loss_sum, input_updates, output_updates = word2vec_slots.slot_sgns_updates(
                state.input_vectors, state.output_vectors, batch, window=window,
                negatives_per_pair=negatives_per_pair)
        elif loss_impl == "fused":
            loss_sum, input_updates, output_updates = fused_sgns_gradients(
                state.output_vectors, state.input_vectors[contexts], batch, window=window,
                negatives_per_pair=negatives_per_pair)
        else:
            outputs = (state.output_vectors[targets], state.output_vectors[noise_ids])
            loss_sum, (context_grad, (target_grad, noise_grad)) = jax.value_and_grad(pairwise_loss, argnums=(0, 1))(
                state.input_vectors[contexts], outputs, batch)
            input_updates = [(contexts, context_grad)]
            output_updates = [(targets, target_grad), (noise_ids, noise_grad)]
        pairs = jnp.sum(batch["pair_mask"])
        if axis_name is not None:
            # Every device applies every device's row updates: replicas stay identical.
            gather = functools.partial(jax.lax.all_gather, axis_name=axis_name, tiled=True, to="invarying")
            input_updates, output_updates = jax.tree.map(gather, (input_updates, output_updates))
            if dense_output_grad is not None:
                dense_output_grad = jax.lax.psum(dense_output_grad, axis_name)
            loss_sum, pairs = jax.lax.psum((loss_sum, pairs), axis_name)
        # 3. SGD on the summed loss: scatter-add the row gradients
        lr = batch["learning_rate"][0]
        input_vectors = _scatter_add(state.input_vectors, input_updates, -lr)
        output_vectors = _scatter_add(state.output_vectors, output_updates, -lr)
        if dense_output_grad is not None:
            output_vectors = output_vectors - lr * dense_output_grad
        new_state = state.replace(step=state.step + 1, input_vectors=input_vectors,
                                  output_vectors=output_vectors)
        return new_state, (loss_sum, pairs, lr)

    return update


def _check_batch(batch: dict[str, jax.Array], window: int) -> None:
    """Raises ValueError (at trace time) unless ``batch`` has the pair layout of ``window``."""
    if "learning_rate" not in batch:
        raise ValueError("batch has no 'learning_rate' [rows]: add the update's rate from learning_rates().")
    rows, length = batch["targets"].shape
    expected = (rows, text_batches.pairs_per_row(window, length))
    for name in ("contexts", "pair_mask"):
        if batch[name].shape != expected:
            raise ValueError(f"batch[{name!r}] has shape {batch[name].shape}; a batch of {rows} rows of "
                             f"{length} targets with window={window} needs {expected}: build it with "
                             "text_batches.skipgram_batch using the same window.")


def _scatter_add(table: jax.Array, updates: list[tuple[jax.Array, jax.Array]], scale: jax.Array) -> jax.Array:
    """``table[ids] += scale * grads`` for each ``(ids [...], grads [..., d])``; repeated ids add up."""
    for ids, grads in updates:
        table = table.at[ids.reshape(-1)].add(scale * grads.reshape(-1, table.shape[-1]))
    return table


def make_per_device_step(*, table_sync: str = "update", update=None, **update_kwargs):
    """``per_device_step(state, batch, axis_name) -> (state, metrics)`` for the drivers.

    ``batch`` arrays are ``[rows, updates, ...]`` (:class:`~rl_repr.data.text.batches.SkipGramBatches`);
    the step runs the ``updates`` SGD updates one after another with ``lax.scan`` -- small
    updates keep word2vec's quality, one compiled call for many of them keeps the Python
    overhead off the hot path. Metrics: ``loss`` (mean per real pair), ``pairs`` and the
    last ``learning_rate``.

    ``table_sync`` (per-device drivers only) says when the replicas of the tables meet:

    * ``'update'``: after every update (all-gathered row updates, module docstring): exactly
      synchronous SGD on the global batch, every device's result identical to one device's.
    * ``'step'``: each device runs the step's ``M`` updates on its own rows against its
      own replica, with no collective, and the replicas then merge by adding up their
      changes: ``e <- e + sum_devices (e_device - e)`` (the same for ``w``). This is
      Hogwild (Recht et al. 2011), the way word2vec.c's and gensim's worker threads share
      their tables, with the race made deterministic: a device sees the other devices'
      updates up to ``M`` updates late. One dense ``2 V d`` all-reduce per step instead of a
      rendezvous per update, so each device runs at its own speed (on a CPU, devices are
      cores). Not equal to the single-device result (tested: close, and the same quality).

    ``update``: an update of :func:`make_update`'s form (CBOW's), else one made from the other arguments.
    """
    if table_sync not in TABLE_SYNC:
        raise ValueError(f"table_sync={table_sync!r} is not one of {TABLE_SYNC}.")
    update = update or make_update(**update_kwargs)

    def per_device_step(state: Word2VecState, batch: dict[str, jax.Array], axis_name: str | None):
        by_update = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batch)  # [updates, rows, ...]
        update_axis = axis_name if table_sync == "update" else None
        local, (loss_sums, pairs, rates) = jax.lax.scan(
            lambda carry, micro: update(carry, micro, update_axis), state, by_update)
        loss_sum, total_pairs = jnp.sum(loss_sums), jnp.sum(pairs)
        if axis_name is not None and table_sync == "step":
            def merged(start, end):
                return start + jax.lax.psum(end - start, axis_name)
            local = local.replace(input_vectors=merged(state.input_vectors, local.input_vectors),
                                  output_vectors=merged(state.output_vectors, local.output_vectors))
            loss_sum, total_pairs = jax.lax.psum((loss_sum, total_pairs), axis_name)
        return local, {"loss": loss_sum / jnp.maximum(total_pairs, 1), "pairs": total_pairs,
                       "learning_rate": rates[-1]}

    return per_device_step
