"""word2vec trainer: corpus, vocabulary, the compiled skip-gram step, evaluation, export.

``train_and_evaluate(config, workdir)`` reads top to bottom: validate the config, build
the vocabulary and the run's batches (:mod:`rl_repr.data.text_batches`), compile the
update (:mod:`rl_repr.train.word2vec_step`) for the configured driver, run the shared
loop (checkpoints, metrics, resume), then evaluate (WordSim-353, SimLex-999, Google
analogies, nearest neighbours) and export the input vectors (word2vec text/binary,
TensorBoard projector). Progress lines report raw corpus words per second, as gensim does.

    python -m rl_repr.main --config=configs/word2vec_wiki.py --workdir=/tmp/w2v
"""
from __future__ import annotations

import collections
import os
import time
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from rl_repr import checkpoint, config_utils, evaluate_words, export_embeddings, parallel
from rl_repr.data import text_batches, text_vocab
from rl_repr.train import results_io
from rl_repr.train.drivers import Driver
from rl_repr.train.loop import LoopConfig, train_loop
from rl_repr.train.metrics import MetricsWriter
from rl_repr.train.word2vec_config import validate_word2vec_config
from rl_repr.train.word2vec_step import init_state, learning_rates, make_per_device_step, negatives_shape


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


class _Throughput:
    """Wraps the compiled step: adds ``words_per_second`` to the metrics and times the run.

    Words are raw corpus words (gensim's measure), counted from when the first call
    returned, i.e. after compilation. ``max_in_flight`` bounds the steps dispatched but
    not finished (``None``: no bound): on a multi-device *CPU* mesh, XLA's in-process
    collectives can deadlock when many steps are dispatched ahead (seen with jax 0.10 on 2
    cores: every device thread must reach each collective's rendezvous), while one step in
    flight lets the host build the next batch as the devices compute.
    """

    def __init__(self, step_fn, words_per_step: float, *, max_in_flight: int | None):
        self.step_fn, self.words_per_step, self.max_in_flight = step_fn, words_per_step, max_in_flight
        self.in_flight: collections.deque = collections.deque()
        self.first_return: float | None = None
        self.calls = 0

    def __call__(self, state, batch):
        state, metrics = self.step_fn(state, batch)
        if self.max_in_flight is not None:
            self.in_flight.append(metrics)  # outputs, never donated: safe to wait on later
            while len(self.in_flight) > self.max_in_flight:
                jax.block_until_ready(self.in_flight.popleft())
        now = time.perf_counter()
        if self.first_return is None:
            self.first_return = now
        self.calls += 1
        elapsed = now - self.first_return
        rate = (self.calls - 1) * self.words_per_step / elapsed if elapsed > 0 else 0.0
        return state, {**metrics, "words_per_second": rate}


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
    parallel.request_cpu_devices(config.cpu_devices)  # before anything starts JAX's backend
    parallel.maybe_initialize_distributed(config)
    if config.compilation_cache_dir:
        # Process-wide: compiled steps are stored and reused by later runs with the same shapes
        # (compiling the fused step costs seconds on a small CPU, a large share of a short run).
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(config.compilation_cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
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
        window=config.window, loss=config.loss, negatives_per_pair=config.negatives, loss_impl=config.loss_impl,
        table_sync=config.table_sync))
    rows_per_process = rows // jax.process_count()
    mine = slice(jax.process_index() * rows_per_process, (jax.process_index() + 1) * rows_per_process)

    updates = config.updates_per_step

    def batch_for_step(step: int):
        batch = batches(step)
        rates = learning_rates(np.arange(step * updates, (step + 1) * updates), alpha=config.alpha,
                               min_alpha=config.min_alpha, total_updates=total_steps * updates)
        batch["learning_rate"] = np.broadcast_to(rates, (rows, updates))
        return driver.put_batch({name: array[mine] for name, array in batch.items()})

    words_per_step = corpus.raw_word_count * config.epochs / total_steps
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                   save_every_steps=config.checkpoint_every_steps)
    first_step = ckpt.latest_step() or 0
    writer = MetricsWriter(workdir)

    # ---- train
    throughput = _Throughput(step_fn, words_per_step,
                             max_in_flight=1 if jax.default_backend() == "cpu" and mesh.devices.size > 1 else None)
    train_start, cpu_start = time.perf_counter(), time.process_time()
    state, step = train_loop(state=state, driver=driver, step_fn=throughput, batch_for_step=batch_for_step,
                             loop=LoopConfig(total_steps=total_steps, log_every=config.log_every_steps,
                                             nan_fix="lower config.alpha (or config.positions_per_row: the "
                                                     "update sums its pairs' gradients)",
                                             stop_after=stop_after_step),
                             checkpointer=ckpt, writer=writer)
    jax.block_until_ready(state)
    train_end = time.perf_counter()
    timing = {"train_seconds": train_end - train_start, "train_cpu_seconds": time.process_time() - cpu_start,
              "raw_words_per_second": (step - first_step) * words_per_step / (train_end - train_start)}
    if throughput.first_return is not None and step - first_step > 1:
        # After the first call returned: without compilation and the first step's dispatch.
        timing["first_step_seconds"] = throughput.first_return - train_start  # mostly compilation
        timing["steady_raw_words_per_second"] = (
            (step - first_step - 1) * words_per_step / (train_end - throughput.first_return))
    ckpt.close()
    if step < total_steps:  # stopped early (preemption): evaluate on the next run
        writer.close()
        return {"stopped_at_step": step}

    # ---- evaluate and export
    vectors = np.asarray(jax.device_get(state.input_vectors))
    results: dict[str, Any] = {
        "raw_words": corpus.raw_word_count, "vocabulary_size": vocab.size, "epochs": config.epochs,
        "steps": total_steps, "corpus_seconds": corpus_seconds, **timing,
        "devices": mesh.devices.size, "backend": jax.default_backend()}
    results.update(evaluate_embeddings(config, vectors, vocab.words, topic_of_word))
    if jax.process_index() == 0:
        results["exported"] = export_vectors(config, os.path.join(workdir, "embeddings"), vocab.words, vectors)
    writer.write(step, {k: v for k, v in results.items() if isinstance(v, float)})
    writer.close()
    results_io.write_results(workdir, results)
    return results
