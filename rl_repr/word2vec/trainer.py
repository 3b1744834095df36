"""word2vec (skip-gram, Mikolov et al. 2013; or CBOW, or a next-word language model: ``config.context``,
``contexts.py``): the method's plan for the runner.

Story of a run (the runner, ``rl_repr.core.runner``, does the shared parts): read the corpus
and build the vocabulary (``rl_repr.data.text``) -> the run's batches, a pure function of the
step -> the tables and the compiled update (``step.py``, ``cbow.py``, ``language_model.py``) -> the
shared loop (checkpoints, metrics, resume; progress lines report raw corpus words per second,
as gensim does) -> WordSim-353, SimLex-999, Google analogies and nearest neighbours
(``evaluation.py``) -> the input vectors exported (``export.py``).

    python -m rl_repr.main --config=configs/word2vec_wiki.py --workdir=/tmp/w2v
"""
from __future__ import annotations

import collections
import os
import time
from typing import Any

import jax
import numpy as np

from rl_repr.core.errors import DataError
from rl_repr.core.extras import require
from rl_repr.core.log import logger
from rl_repr.core.runner import Finished, Method, Plan
from rl_repr.data.text import batches as text_batches
from rl_repr.data.text import vocab as text_vocab
from rl_repr.word2vec import contexts, evaluation, export
from rl_repr.word2vec.config import word2vec_defaults, word2vec_rules
from rl_repr.word2vec.step import learning_rates, negatives_shape

ml_collections = require("ml_collections")


def load_corpus(config: ml_collections.ConfigDict) -> tuple[list[list[str]], dict[str, int] | None]:
    """The configured corpus as sentences, and for ``'topics'`` each word's planted topic."""
    data = config.data
    if data.source == "topics":
        return text_vocab.generate_topic_corpus(seed=config.seed, **data.topics.to_dict())
    return text_vocab.corpus_sentences(data.source, files=tuple(data.files), cache_dir=data.cache_dir or None,
                                       pretokenized=data.pretokenized, lowercase=data.lowercase,
                                       encoding_errors=data.encoding_errors), None


class Throughput:
    """Wraps the compiled step: adds ``words_per_second`` to the metrics and times the run.

    Words are raw corpus words (gensim's measure), counted from when the first call returned,
    i.e. after compilation. ``max_in_flight`` bounds the steps dispatched but not finished
    (``None``: no bound): on a multi-device *CPU* mesh, XLA's in-process collectives can
    deadlock when many steps are dispatched ahead (every device thread must reach each
    collective's rendezvous), while one step in flight lets the host build the next batch as
    the devices compute.
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


def _use_compilation_cache(directory: str) -> None:
    # Process-wide: compiled steps are stored and reused by later runs with the same shapes
    # (compiling the fused step costs seconds on a small CPU, a large share of a short run).
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def plan(config: ml_collections.ConfigDict, mesh) -> Plan:
    """Corpus, vocabulary, batches, tables and the update of a word2vec run on ``mesh``."""
    if config.compilation_cache_dir:
        _use_compilation_cache(config.compilation_cache_dir)
    rows = config.rows or mesh.devices.size
    corpus_start = time.perf_counter()
    sentences, topic_of_word = load_corpus(config)
    vocab = text_vocab.build_vocabulary(sentences, min_count=config.data.min_count,
                                        max_size=config.data.max_vocab_size or None)
    corpus = text_vocab.encode_corpus(sentences, vocab, max_sentence_length=config.data.max_sentence_length)
    if corpus.num_words < 2:
        raise DataError(f"the corpus yields no training pairs ({corpus.raw_word_count} words, {corpus.num_words} of "
                        f"them seen at least config.data.min_count={config.data.min_count} times); give it more text "
                        "or lower config.data.min_count.")
    del sentences
    noise_shape = negatives_shape(config.negative_sharing, window=config.window,
                                  positions_per_row=config.positions_per_row,
                                  negatives_per_pair=config.negatives, shared_negatives=config.shared_negatives)
    batches = contexts.batches_class(config)(  # skip-gram's windows, or the last words (language model)
        corpus, keep_prob=text_batches.keep_probabilities(vocab.counts, config.data.sample),
        noise_probs=text_batches.noise_distribution(vocab.counts), window=config.window, seed=config.seed,
        epochs=config.epochs, rows=rows, positions_per_row=config.positions_per_row,
        updates=config.updates_per_step, negatives_shape=noise_shape)
    corpus_seconds = time.perf_counter() - corpus_start
    total_steps, updates = batches.total_steps, config.updates_per_step
    logger.info(f"word2vec: {corpus.raw_word_count} words, vocabulary {vocab.size}, {total_steps} steps of "
                f"{updates} updates x {rows} rows x {config.positions_per_row} targets "
                f"on {mesh.devices.size} device(s).")
    rows_per_process = rows // jax.process_count()
    mine = slice(jax.process_index() * rows_per_process, (jax.process_index() + 1) * rows_per_process)

    def batch_for_step(step: int) -> dict:
        batch = batches(step)
        rates = learning_rates(np.arange(step * updates, (step + 1) * updates), alpha=config.alpha,
                               min_alpha=config.min_alpha, total_updates=total_steps * updates)
        batch["learning_rate"] = np.broadcast_to(rates, (rows, updates))
        return {name: array[mine] for name, array in batch.items()}

    words_per_step = corpus.raw_word_count * config.epochs / total_steps
    cpu_mesh = jax.default_backend() == "cpu" and mesh.devices.size > 1
    throughput: list[Throughput] = []

    def wrap_step(step_fn):
        throughput.append(Throughput(step_fn, words_per_step, max_in_flight=1 if cpu_mesh else None))
        return throughput[-1]

    def final_evaluation(state, finished: Finished) -> dict[str, Any]:
        steps_run = finished.last_step - finished.first_step
        results: dict[str, Any] = {
            "raw_words": corpus.raw_word_count, "vocabulary_size": vocab.size, "epochs": config.epochs,
            "corpus_seconds": corpus_seconds, "train_cpu_seconds": finished.cpu_seconds,
            "raw_words_per_second": steps_run * words_per_step / finished.seconds, "backend": jax.default_backend()}
        first_return = throughput[-1].first_return if throughput else None
        if first_return is not None and steps_run > 1:
            # After the first call returned: without compilation and the first step's dispatch.
            results["first_step_seconds"] = first_return - finished.started  # mostly compilation
            results["steady_raw_words_per_second"] = (
                (steps_run - 1) * words_per_step / (finished.started + finished.seconds - first_return))
        vectors = np.asarray(jax.device_get(state.input_vectors))
        results.update(evaluation.evaluate_embeddings(config, vectors, vocab.words, topic_of_word))
        if jax.process_index() == 0:
            results["exported"] = export.export_vectors(config, os.path.join(finished.workdir, "embeddings"),
                                                        vocab.words, vectors)
        return results

    return Plan(state=contexts.initial_state(config, vocab.size), per_device_step=contexts.per_device_step(config),
                batch_for_step=batch_for_step, total_steps=total_steps, final_evaluation=final_evaluation,
                wrap_step=wrap_step)


METHOD = Method(name="word2vec", defaults=word2vec_defaults, rules=word2vec_rules,
                global_batch_size=lambda config, num_devices: config.rows or num_devices, plan=plan,
                nan_fix="lower config.alpha (or config.positions_per_row: the update sums its pairs' gradients)",
                max_growth=None)  # the vectors start near zero and grow by design
