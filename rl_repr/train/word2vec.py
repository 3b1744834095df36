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
    if noise_vecs.ndim == 3:
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

    Args:
      target_ids: ``[T]``; context_vecs: ``e_c``, ``[P, d]``; output_vectors: ``W``,
      ``[V, d]``. Costs ``O(P V d)``: for small vocabularies and comparisons.
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
      ``(loss_sum, context_grads, output_updates)``: ``context_grads [R, P, d]`` and the
      output updates as ``(ids, gradients)`` pairs for :func:`_scatter_add`. A target and
      its noise words are gathered together (``[R, T, 1 + K]`` ids) so each group scores
      them in one product.
    """
    targets, noise_ids, pair_mask = batch["targets"], batch["negatives"], batch["pair_mask"]
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
    output_grad = jnp.zeros_like(outputs)
    shared_grad = None if shared is None else jnp.zeros_like(shared)
    loss_sum, context_grads = 0.0, []
    per_pair_outputs = output_ids.shape[1] != length
    argnums = (0, 1) if shared is None else (0, 1, 3)
    for _, first, count in text_batches.pair_layout(window, length):
        for side in (first, first + count):  # offsets -k, then +k: one [n, d] x [n, 1 + K, d] product each
            span = slice(side, side + count)
            group_outputs = outputs[:, span] if per_pair_outputs else outputs[:, :count]
            loss_k, grads = jax.value_and_grad(sgns_group_loss, argnums=argnums)(
                context_vecs[:, span], group_outputs, pair_mask[:, span], shared, noise_weight)
            loss_sum += loss_k
            context_grads.append(grads[0])
            output_grad = output_grad.at[:, span if per_pair_outputs else slice(0, count)].add(grads[1])
            if shared is not None:
                shared_grad = shared_grad + grads[2]
    output_updates = [(output_ids, output_grad)]
    if shared is not None:
        output_updates.append((shared_ids, shared_grad))
    return loss_sum, jnp.concatenate(context_grads, axis=1), output_updates


def make_update(*, window: int, loss: str, negatives_per_pair: int, alpha: float,
                min_alpha: float, total_updates: int, loss_impl: str = "fused"):
    """``update(state, batch, axis_name) -> (state, (loss_sum, pairs, lr))``: one SGD update.

    ``batch`` holds this device's rows of :func:`rl_repr.data.text_batches.skipgram_batch`.
    For ``loss='sgns'``, ``loss_impl='vmap'`` differentiates the sum of
    :func:`sgns_pair_losses` (the library loss vmapped over pairs) and ``'fused'`` the same
    sum written group by group (:func:`fused_sgns_gradients`), several times faster on CPU.
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
        contexts, targets, noise_ids = batch["contexts"], batch["targets"], batch["negatives"]
        # 1. gather only the rows this batch touches (full softmax needs all of W) and
        # 2. differentiate the summed loss with respect to those rows
        context_vecs = state.input_vectors[contexts]
        dense_output_grad = None
        if loss == "full_softmax":
            loss_sum, (context_grad, dense_output_grad) = jax.value_and_grad(pairwise_loss, argnums=(0, 1))(
                context_vecs, state.output_vectors, batch)
            output_updates = []
        elif loss_impl == "fused":
            loss_sum, context_grad, output_updates = fused_sgns_gradients(
                state.output_vectors, context_vecs, batch, window=window, negatives_per_pair=negatives_per_pair)
        else:
            outputs = (state.output_vectors[targets], state.output_vectors[noise_ids])
            loss_sum, (context_grad, (target_grad, noise_grad)) = jax.value_and_grad(pairwise_loss, argnums=(0, 1))(
                context_vecs, outputs, batch)
            output_updates = [(targets, target_grad), (noise_ids, noise_grad)]
        input_updates = [(contexts, context_grad)]
        pairs = jnp.sum(batch["pair_mask"])
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


def _scatter_add(table: jax.Array, updates: list[tuple[jax.Array, jax.Array]], scale: jax.Array) -> jax.Array:
    """``table[ids] += scale * grads`` for each ``(ids [...], grads [..., d])``; repeated ids add up."""
    for ids, grads in updates:
        table = table.at[ids.reshape(-1)].add(scale * grads.reshape(-1, table.shape[-1]))
    return table


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


def _with_words_per_second(step_fn, words_per_step: float, *, synchronous: bool):
    """Adds ``words_per_second`` (raw corpus words, since the first call returned) to the metrics.

    ``synchronous`` waits for each step: on a multi-device *CPU* mesh, XLA's in-process
    collectives can deadlock when many steps are dispatched ahead (seen with jax 0.10 on
    2 cores: every device thread must reach each all-gather's rendezvous).
    """
    clock: dict[str, float] = {}

    def step(state, batch):
        state, metrics = step_fn(state, batch)
        if synchronous:
            jax.block_until_ready(state)
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
    synchronous = jax.default_backend() == "cpu" and mesh.devices.size > 1
    state, step = train_loop(state=state, driver=driver,
                             step_fn=_with_words_per_second(step_fn, words_per_step, synchronous=synchronous),
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
