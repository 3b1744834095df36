"""word2vec: skip-gram with negative sampling (or full softmax), vmapped, sparse, sharded.

Mikolov et al. 2013 ("Efficient Estimation of Word Representations in Vector Space",
arXiv:1301.3781; "Distributed Representations of Words and Phrases", arXiv:1310.4546);
slides 002. Two tables, input vectors ``v`` (the embeddings we keep) and output vectors
``u``; for each (centre ``c``, context ``o``) pair in a dynamic window::

    sgns:          l = -log sigma(u_o . v_c) - sum_{k=1}^{K} log sigma(-u_{n_k} . v_c),  n_k ~ P_n
    full_softmax:  l = -log softmax(U v_c)_o

The step (one per batch of ``R`` rows x ``T`` centre positions, see
:mod:`rl_repr.data.text_batches`):

1. gather the rows it needs -- ``v`` of the ``T`` centres, ``u`` of the ``T + 2W`` halo
   tokens, ``u`` of the noise words -- so the work scales with the batch, not ``V``;
2. per-pair losses: ``rl_repr.losses.sgns_loss`` vmapped over offsets and centres
   (full softmax: ``skipgram_full_softmax_loss``), masked by the dynamic window;
3. the gradient of the *summed* loss with respect to the gathered rows (plain SGD on
   the sum, as word2vec takes one step per pair), scatter-added into the tables with
   the learning rate ``alpha`` decayed linearly to ``min_alpha`` over training.

Negatives: ``negative_sharing='pair'`` draws ``K`` noise words for every pair
(word2vec.c exactly); ``'row'`` shares ``S = G K`` noise words among a row's pairs and
averages the loss over the ``G`` groups of ``K`` -- an unbiased estimate of the same
objective whose negative scores are one ``[T, d] x [d, S]`` matrix product.

Sharding: the rows of a batch are split over the ``data`` mesh axis and both tables are
*replicated*. Each device computes the row gradients of its rows; under ``shard_map`` /
``pmap`` the (ids, row-gradient) pairs are all-gathered and every device applies all of
them with the same scatter-add, so the replicas stay identical and the communication is
``O(global batch x d)`` rather than a dense ``O(V x d)`` all-reduce. Replication rather
than row-splitting because word frequencies are Zipfian: the few hot rows would land on
one device, and a row split needs an all-to-all per gather; for vocabularies too large to
replicate, split rows instead. The ``jit`` driver leaves the same choice to XLA. Full
softmax touches every output row, so its output-table gradient is all-reduced densely.
"""
from __future__ import annotations

import functools
import os
import time
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rl_repr import checkpoint, config_utils, evaluate_words, export_embeddings, losses, parallel
from rl_repr.data import text_batches, text_vocab
from rl_repr.train import results_io
from rl_repr.train.drivers import Driver
from rl_repr.train.loop import LoopConfig, train_loop
from rl_repr.train.metrics import MetricsWriter
from rl_repr.train.word2vec_config import (LOSS_IMPLEMENTATIONS, LOSSES, NEGATIVE_SHARING,
                                           validate_word2vec_config)


# ============================================================================ state
@flax.struct.dataclass
class Word2VecState:
    """Both embedding tables and the step counter (which drives the learning rate).

    Attributes:
      step: int32 scalar, steps taken.
      input_vectors: ``[V, d]`` float32, the word embeddings (``v``).
      output_vectors: ``[V, d]`` float32, the context vectors (``u``).
    """

    step: jax.Array
    input_vectors: jax.Array
    output_vectors: jax.Array


def init_state(key: jax.Array, vocab_size: int, dim: int) -> Word2VecState:
    """word2vec's initialisation: ``v ~ U[-0.5/d, 0.5/d)``, ``u = 0``."""
    input_vectors = jax.random.uniform(key, (vocab_size, dim), jnp.float32, -0.5 / dim, 0.5 / dim)
    return Word2VecState(step=jnp.zeros((), jnp.int32), input_vectors=input_vectors,
                         output_vectors=jnp.zeros((vocab_size, dim), jnp.float32))


def learning_rate(step: jax.Array, *, alpha: float, min_alpha: float, total_steps: int) -> jax.Array:
    """word2vec's linear decay: ``alpha - (alpha - min_alpha) * min(step / total_steps, 1)``."""
    progress = jnp.minimum(step.astype(jnp.float32) / max(total_steps, 1), 1.0)
    return alpha - (alpha - min_alpha) * progress


# ============================================================================ losses
def negatives_shape(negative_sharing: str, *, window: int, positions_per_row: int,
                    negatives_per_pair: int, shared_negatives: int) -> tuple[int, ...]:
    """Noise ids per batch row: ``pair`` ``(2W, T, K)``, ``window`` ``(T, K)``, ``row`` ``(S,)``."""
    if negative_sharing == "pair":
        return (2 * window, positions_per_row, negatives_per_pair)
    if negative_sharing == "window":
        return (positions_per_row, negatives_per_pair)
    if negative_sharing == "row":
        if shared_negatives < negatives_per_pair or shared_negatives % negatives_per_pair:
            raise ValueError(f"shared_negatives={shared_negatives} must be a positive multiple of "
                             f"negatives={negatives_per_pair} (the loss averages over groups of K).")
        return (shared_negatives,)
    raise ValueError(f"negative_sharing={negative_sharing!r} is not one of {NEGATIVE_SHARING}.")


def sgns_pair_losses(target_vecs: jax.Array, context_vecs: jax.Array, noise_vecs: jax.Array,
                     negatives_per_pair: int) -> jax.Array:
    """Per-pair SGNS losses ``[2W, T]``: ``rl_repr.losses.sgns_loss`` vmapped over pairs.

    Pair ``(j, i)`` is context ``c`` (offset ``j`` from target ``i``) predicting target
    ``t``: ``sgns_loss(e_c, w_t, w_noise)`` -- the library's "centre" argument is the
    input vector ``e_c``. The definition :func:`sgns_window_loss` is tested against.

    Args:
      target_vecs: ``w_t``, output vectors of the targets, ``[T, d]``.
      context_vecs: ``e_c``, input vectors of the contexts, offset-major ``[2W, T, d]``.
      noise_vecs: output vectors of the noise words: ``[2W, T, K, d]`` (``pair``),
        ``[T, K, d]`` (``window``: shared by a target's contexts) or ``[S, d]`` (``row``;
        ``S = G K`` and the loss is averaged over the ``G`` groups of ``K``, an unbiased
        estimate of the loss with ``K`` negatives).
      negatives_per_pair: ``K``.
    """
    def pair_loss(target, context, noise):
        return losses.sgns_loss(context, target, noise)

    if noise_vecs.ndim == 4:
        return jax.vmap(jax.vmap(pair_loss), in_axes=(None, 0, 0))(target_vecs, context_vecs, noise_vecs)
    if noise_vecs.ndim == 3:
        return jax.vmap(jax.vmap(pair_loss), in_axes=(None, 0, None))(target_vecs, context_vecs, noise_vecs)
    if noise_vecs.ndim == 2:
        groups = noise_vecs.reshape(-1, negatives_per_pair, noise_vecs.shape[-1])

        def grouped_loss(target, context):
            return jnp.mean(jax.vmap(pair_loss, in_axes=(None, None, 0))(target, context, groups))

        return jax.vmap(jax.vmap(grouped_loss), in_axes=(None, 0))(target_vecs, context_vecs)
    raise ValueError(f"noise_vecs has shape {noise_vecs.shape}; pass [2W, T, K, d], [T, K, d] or [S, d].")


def sgns_window_loss(target_vecs: jax.Array, context_vecs: Sequence[jax.Array], noise_vecs: jax.Array,
                     mask: jax.Array, *, negatives_per_pair: int) -> jax.Array:
    """``sum_{j,i} mask[j,i] * sgns_loss(e_{c_ji}, w_{t_i}, noise of (j,i))``, fused.

    Equal to ``sum(where(mask, sgns_pair_losses(...), 0))`` (tested), written for XLA on
    CPU: each offset's contexts are a separate sliced ``[T, d]`` array (never a stacked
    ``[2W, T, d]`` copy) whose gradient goes straight to its own scatter-add, and each
    offset's scores against the target and its noise words are one batched dot product
    (einsum), which XLA runs several times faster than multiply-and-sum on CPU::

        sum_j sum_i m_ji [ -log sigma(w_{t_i} . e_{c_ji}) - a sum_k log sigma(-w_{n_k} . e_{c_ji}) ]

    with ``a = K / S`` under ``row`` sharing (1 otherwise).

    Args:
      target_vecs: ``[..., T, d]``.
      context_vecs: ``2W`` arrays ``[..., T, d]``, the contexts at each offset.
      noise_vecs: ``[..., 2W, T, K, d]`` (``pair``), ``[..., T, K, d]`` (``window``) or
        ``[..., S, d]`` (``row``).
      mask: ``[..., 2W, T]`` bool, the real pairs.
      negatives_per_pair: ``K``.
    """
    weights = mask.astype(target_vecs.dtype)
    extra = noise_vecs.ndim - target_vecs.ndim
    # Scores against [target, noise_1..K] in one dot product per offset; the signs turn
    # -log sigma(s_0) - sum_k log sigma(-s_k) into -sum_k log sigma(sign_k s_k).
    signs = jnp.concatenate([jnp.ones(1), -jnp.ones(negatives_per_pair)]).astype(target_vecs.dtype)
    if extra == 1:  # [..., T, K, d]: K per target, shared by its window
        window_outputs = jnp.concatenate([target_vecs[..., None, :], noise_vecs], axis=-2)
    total = 0.0
    for j, context in enumerate(context_vecs):
        if extra == 0:  # [..., S, d]: S shared by the row; the noise scores are a matrix product
            score = jnp.einsum("...td,...td->...t", context, target_vecs)
            noise_scores = jnp.einsum("...td,...sd->...ts", context, noise_vecs)
            per_pair = -jax.nn.log_sigmoid(score) - (negatives_per_pair / noise_vecs.shape[-2]) * jnp.sum(
                jax.nn.log_sigmoid(-noise_scores), axis=-1)
        else:
            outputs = window_outputs if extra == 1 else jnp.concatenate(  # pair: K of its own
                [target_vecs[..., None, :], noise_vecs[..., j, :, :, :]], axis=-2)
            scores = jnp.einsum("...td,...tkd->...tk", context, outputs)
            per_pair = -jnp.sum(jax.nn.log_sigmoid(signs * scores), axis=-1)
        total += jnp.sum(weights[..., j, :] * per_pair)
    return total


def full_softmax_pair_losses(target_ids: jax.Array, context_vecs: jax.Array,
                             output_vectors: jax.Array) -> jax.Array:
    """Per-pair ``-log softmax(W e_c)_t``, ``[2W, T]``, from ``skipgram_full_softmax_loss``.

    Args:
      target_ids: ``[T]``; context_vecs: ``e_c``, ``[2W, T, d]``; output_vectors: ``W``,
      ``[V, d]``. Costs ``O(2W T V d)``: for small vocabularies and comparisons.
    """
    def pair_loss(target_id, context):
        return losses.skipgram_full_softmax_loss(context[None], output_vectors, target_id[None])

    return jax.vmap(jax.vmap(pair_loss), in_axes=(None, 0))(target_ids, context_vecs)


# ============================================================================ step
def make_update(*, window: int, loss: str, negatives_per_pair: int, alpha: float,
                min_alpha: float, total_updates: int, loss_impl: str = "fused"):
    """``update(state, batch, axis_name) -> (state, (loss_sum, pairs, lr))``: one SGD update.

    ``batch`` is :func:`rl_repr.data.text_batches.skipgram_batch`'s dict for this device's
    rows. For ``loss='sgns'``, ``loss_impl='vmap'`` differentiates the sum of
    :func:`sgns_pair_losses` (the library loss vmapped over pairs) and ``'fused'`` the
    same sum written as :func:`sgns_window_loss`, about twice as fast on CPU. ``loss_sum``
    and ``pairs`` (the real pairs) are totals over every device's rows.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is not one of {LOSSES}.")
    if loss_impl not in LOSS_IMPLEMENTATIONS:
        raise ValueError(f"loss_impl={loss_impl!r} is not one of {LOSS_IMPLEMENTATIONS}.")
    offsets = [int(o) for o in text_batches.context_offsets(window)]

    def pairwise_loss(halo_vecs, outputs, masks, target_ids):
        """The vmapped library losses of every row, summed; ``outputs``: (targets, noise) or ``W``."""
        def row(halo, row_outputs, mask, row_targets):
            contexts = text_batches.windowed(halo, window)
            if loss == "full_softmax":
                per_pair = full_softmax_pair_losses(row_targets, contexts, row_outputs)
            else:
                per_pair = sgns_pair_losses(row_outputs[0], contexts, row_outputs[1], negatives_per_pair)
            return jnp.sum(jnp.where(mask, per_pair, 0.0))
        output_axis = None if loss == "full_softmax" else 0
        return jnp.sum(jax.vmap(row, in_axes=(0, output_axis, 0, 0))(halo_vecs, outputs, masks, target_ids))

    def update(state: Word2VecState, batch: dict[str, jax.Array], axis_name: str | None):
        tokens, noise_ids = batch["tokens"], batch["negatives"]
        length = tokens.shape[1] - 2 * window
        target_ids = tokens[:, window:window + length]
        masks = jax.vmap(text_batches.context_mask, in_axes=(0, 0, None))(
            batch["sentences"], batch["windows"], window)
        # 1. gather only the rows this batch touches (full softmax needs all of W) and
        # 2. differentiate the summed loss with respect to those rows
        halo_vecs = state.input_vectors[tokens]
        dense_output_grad = None
        if loss == "full_softmax":
            loss_sum, (halo_grad, dense_output_grad) = jax.value_and_grad(pairwise_loss, argnums=(0, 1))(
                halo_vecs, state.output_vectors, masks, target_ids)
            input_updates, output_updates = [(tokens, halo_grad)], []
        elif loss_impl == "fused":
            contexts = [halo_vecs[:, window + o:window + o + length] for o in offsets]
            fused = functools.partial(sgns_window_loss, negatives_per_pair=negatives_per_pair)
            loss_sum, (target_grad, context_grads, noise_grad) = jax.value_and_grad(fused, argnums=(0, 1, 2))(
                state.output_vectors[target_ids], contexts, state.output_vectors[noise_ids], masks)
            # Each offset's gradient goes to its own scatter: no [T + 2W] halo sum to build.
            input_updates = [(tokens[:, window + o:window + o + length], g) for o, g in zip(offsets, context_grads)]
            output_updates = [(target_ids, target_grad), (noise_ids, noise_grad)]
        else:
            outputs = (state.output_vectors[target_ids], state.output_vectors[noise_ids])
            loss_sum, (halo_grad, (target_grad, noise_grad)) = jax.value_and_grad(pairwise_loss, argnums=(0, 1))(
                halo_vecs, outputs, masks, target_ids)
            input_updates = [(tokens, halo_grad)]
            output_updates = [(target_ids, target_grad), (noise_ids, noise_grad)]
        pairs = jnp.sum(masks)
        if axis_name is not None:
            # Every device applies every device's row updates: replicas stay identical.
            gather = functools.partial(jax.lax.all_gather, axis_name=axis_name, tiled=True, to="invarying")
            input_updates, output_updates = jax.tree.map(gather, (input_updates, output_updates))
            if dense_output_grad is not None:
                dense_output_grad = jax.lax.psum(dense_output_grad, axis_name)
            loss_sum, pairs = jax.lax.psum((loss_sum, pairs), axis_name)
        # 3. SGD on the summed loss: scatter-add the row gradients
        lr = learning_rate(state.step, alpha=alpha, min_alpha=min_alpha, total_steps=total_updates)
        input_vectors = _scatter_add(state.input_vectors, input_updates, -lr)
        output_vectors = _scatter_add(state.output_vectors, output_updates, -lr)
        if dense_output_grad is not None:
            output_vectors = output_vectors - lr * dense_output_grad
        new_state = state.replace(step=state.step + 1, input_vectors=input_vectors,
                                  output_vectors=output_vectors)
        return new_state, (loss_sum, pairs, lr)

    return update


def make_per_device_step(**update_kwargs):
    """``per_device_step(state, batch, axis_name) -> (state, metrics)`` for the drivers.

    ``batch`` arrays are ``[rows, updates, ...]`` (:class:`~rl_repr.data.text_batches.SkipGramBatches`);
    the step runs the ``updates`` SGD updates one after another with ``lax.scan`` -- small
    updates keep word2vec's quality, one compiled call for many of them keeps the Python
    overhead off the hot path. Metrics: ``loss`` (mean per real pair), ``pairs`` and the
    last ``learning_rate``. Arguments: those of :func:`make_update`.
    """
    update = make_update(**update_kwargs)

    def per_device_step(state: Word2VecState, batch: dict[str, jax.Array], axis_name: str | None):
        by_update = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batch)  # [updates, rows, ...]
        state, (loss_sums, pairs, rates) = jax.lax.scan(
            lambda carry, micro: update(carry, micro, axis_name), state, by_update)
        total_pairs = jnp.sum(pairs)
        return state, {"loss": jnp.sum(loss_sums) / jnp.maximum(total_pairs, 1), "pairs": total_pairs,
                       "learning_rate": rates[-1]}

    return per_device_step


def _scatter_add(table: jax.Array, updates: list[tuple[jax.Array, jax.Array]], scale: jax.Array) -> jax.Array:
    """``table[ids] += scale * grads`` for each ``(ids [...], grads [..., d])``; repeated ids add up."""
    for ids, grads in updates:
        table = table.at[ids.reshape(-1)].add(scale * grads.reshape(-1, table.shape[-1]))
    return table


# ============================================================================ run
def load_corpus(config: ml_collections.ConfigDict) -> tuple[list[list[str]], dict[str, int] | None]:
    """The configured corpus as sentences, and for ``'topics'`` each word's planted topic."""
    data = config.data
    if data.source == "topics":
        return text_vocab.generate_topic_corpus(seed=config.seed, **data.topics.to_dict())
    return text_vocab.corpus_sentences(data.source, files=tuple(data.files), cache_dir=data.cache_dir or None,
                                       pretokenized=data.pretokenized, lowercase=data.lowercase), None


def evaluate_embeddings(config: ml_collections.ConfigDict, vectors: np.ndarray, words: Sequence[str],
                        topic_of_word: dict[str, int] | None) -> dict[str, Any]:
    """Word benchmarks (or planted-topic recovery for ``'topics'``) and nearest neighbours."""
    results: dict[str, Any] = {}
    if topic_of_word is not None:
        labels = np.array([topic_of_word[w] for w in words])
        results["topic_neighbour_accuracy"] = evaluate_words.cluster_neighbour_accuracy(vectors, labels)
        queries = list(words[:3])
    else:
        try:
            results.update(evaluate_words.evaluate_word_vectors(
                vectors, words, wordsim=config.eval.wordsim, simlex=config.eval.simlex,
                analogies=config.eval.analogies, restrict_vocab=config.eval.restrict_vocab))
        except ImportError as error:  # gensim (which ships the benchmark files) is optional
            results["word_benchmarks_skipped"] = str(error)
        queries = list(config.eval.neighbours)
    results["nearest_neighbours"] = {
        query: [word for word, _ in neighbours] for query, neighbours in evaluate_words.nearest_neighbours(
            vectors, words, queries, k=config.eval.num_neighbours).items()}
    return results


def export_vectors(config: ml_collections.ConfigDict, directory: str, words: Sequence[str],
                   vectors: np.ndarray) -> dict[str, str]:
    """Writes the input vectors in the configured formats under ``directory``; returns the paths."""
    paths = {}
    if config.export.word2vec_text:
        paths["word2vec_text"] = export_embeddings.save_word2vec_format(
            os.path.join(directory, "vectors.txt"), words, vectors)
    if config.export.word2vec_binary:
        paths["word2vec_binary"] = export_embeddings.save_word2vec_format(
            os.path.join(directory, "vectors.bin"), words, vectors, binary=True)
    if config.export.projector:
        paths["projector"] = os.path.dirname(export_embeddings.save_projector_files(
            os.path.join(directory, "projector"), words, vectors)["vectors.tsv"])
    return paths


def _with_words_per_second(step_fn, words_per_step: float):
    """Adds ``words_per_second`` (raw corpus words, since the first call returned) to the metrics."""
    clock: dict[str, float] = {}

    def step(state, batch):
        state, metrics = step_fn(state, batch)
        now = time.perf_counter()
        clock.setdefault("start", now)
        clock["calls"] = clock.get("calls", -1) + 1
        elapsed = now - clock["start"]
        rate = clock["calls"] * words_per_step / elapsed if elapsed > 0 else 0.0
        return state, {**metrics, "words_per_second": rate}

    return step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after_step: int | None = None) -> dict[str, Any]:
    """Trains word2vec as configured, evaluates and exports the vectors; returns the results.

    Writes ``config.json``, ``metrics.jsonl`` (and TensorBoard summaries), orbax
    checkpoints, ``embeddings/`` (word2vec text/binary, projector files) and
    ``results.json`` under ``workdir``. Rerunning with the same ``workdir`` resumes from
    the latest checkpoint; ``stop_after_step`` stops early with a checkpoint, as a
    preempted job would.
    """
    validate_word2vec_config(config)
    parallel.maybe_initialize_distributed(config)
    mesh = parallel.make_mesh(config.num_devices or None)
    rows = config.rows or mesh.devices.size
    parallel.check_batch_divisible(rows, mesh)
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        config_utils.config_to_json(config, os.path.join(workdir, "config.json"))

    # ---- corpus: vocabulary, ids, and the run's batches (a pure function of the step)
    corpus_start = time.perf_counter()
    sentences, topic_of_word = load_corpus(config)
    vocab = text_vocab.build_vocabulary(sentences, min_count=config.data.min_count,
                                        max_size=config.data.max_vocab_size or None)
    corpus = text_vocab.encode_corpus(sentences, vocab, max_sentence_length=config.data.max_sentence_length)
    del sentences
    noise_shape = negatives_shape(config.negative_sharing, window=config.window,
                                  positions_per_row=config.positions_per_row,
                                  negatives_per_pair=config.negatives, shared_negatives=config.shared_negatives)
    batches = text_batches.SkipGramBatches(
        corpus, keep_prob=text_batches.keep_probabilities(vocab.counts, config.data.sample),
        noise_probs=text_batches.noise_distribution(vocab.counts), window=config.window, seed=config.seed,
        epochs=config.epochs, rows=rows, positions_per_row=config.positions_per_row,
        updates=config.updates_per_step, negatives_shape=noise_shape)
    corpus_seconds = time.perf_counter() - corpus_start
    total_steps = batches.total_steps
    print(f"word2vec: {corpus.raw_word_count} words, vocabulary {vocab.size}, {total_steps} steps of "
          f"{config.updates_per_step} updates x {rows} rows x {config.positions_per_row} targets "
          f"on {mesh.devices.size} device(s).", flush=True)

    # ---- state and the compiled step
    state = init_state(jax.random.PRNGKey(config.seed), vocab.size, config.dim)
    driver = Driver(config.parallel, mesh)
    step_fn = driver.compile_step(make_per_device_step(
        window=config.window, loss=config.loss, negatives_per_pair=config.negatives, alpha=config.alpha,
        min_alpha=config.min_alpha, total_updates=total_steps * config.updates_per_step,
        loss_impl=config.loss_impl))
    rows_per_process = rows // jax.process_count()
    mine = slice(jax.process_index() * rows_per_process, (jax.process_index() + 1) * rows_per_process)

    def batch_for_step(step: int):
        return driver.put_batch({name: array[mine] for name, array in batches(step).items()})

    words_per_step = corpus.raw_word_count * config.epochs / total_steps
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                   save_every_steps=config.checkpoint_every_steps)
    first_step = ckpt.latest_step() or 0
    writer = MetricsWriter(workdir)

    # ---- train
    train_start = time.perf_counter()
    state, step = train_loop(state=state, driver=driver, step_fn=_with_words_per_second(step_fn, words_per_step),
                             batch_for_step=batch_for_step,
                             loop=LoopConfig(total_steps=total_steps, log_every=config.log_every_steps,
                                             stop_after=stop_after_step),
                             checkpointer=ckpt, writer=writer)
    jax.block_until_ready(state)
    train_seconds = time.perf_counter() - train_start
    ckpt.close()
    if step < total_steps:  # stopped early (preemption): evaluate on the next run
        writer.close()
        return {"stopped_at_step": step}

    # ---- evaluate and export
    vectors = np.asarray(jax.device_get(state.input_vectors))
    results: dict[str, Any] = {
        "raw_words": corpus.raw_word_count, "vocabulary_size": vocab.size, "epochs": config.epochs,
        "steps": total_steps, "corpus_seconds": corpus_seconds, "train_seconds": train_seconds,
        "raw_words_per_second": (step - first_step) * words_per_step / train_seconds,
        "devices": mesh.devices.size, "backend": jax.default_backend()}
    results.update(evaluate_embeddings(config, vectors, vocab.words, topic_of_word))
    if jax.process_index() == 0:
        results["exported"] = export_vectors(config, os.path.join(workdir, "embeddings"), vocab.words, vectors)
    writer.write(step, {k: v for k, v in results.items() if isinstance(v, float)})
    writer.close()
    results_io.write_results(workdir, results)
    return results
