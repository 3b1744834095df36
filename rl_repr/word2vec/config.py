"""word2vec's config: every key, its default, and the rule it must satisfy.

Defaults are gensim's skip-gram settings (``Word2Vec(sg=1)``: dim 100, window 5,
negative 5, sample 1e-3, min_count 5, alpha 0.025 -> 0.0001, 5 epochs). Recipes in
``configs/word2vec_*.py`` start from :func:`word2vec_defaults`; the runner checks
:func:`word2vec_rules` (plus the system rules) before anything compiles.
"""
from __future__ import annotations

from rl_repr.core import config as cu
from rl_repr.core.extras import require
from rl_repr.core.system import system_defaults

ml_collections = require("ml_collections")

SOURCES = ("wiki_excerpt", "lee", "files", "topics")
LOSSES = ("sgns", "full_softmax")
LOSS_IMPLEMENTATIONS = ("slots", "fused", "vmap")
NEGATIVE_SHARING = ("pair", "window", "row")
TABLE_SYNC = ("update", "step")
CONTEXTS = ("skipgram", "cbow", "language_model")  # rl_repr.word2vec.contexts


def word2vec_defaults() -> ml_collections.ConfigDict:
    """Skip-gram with negative sampling on gensim's Wikipedia excerpt, gensim's settings."""
    c = system_defaults("word2vec")
    # ---- corpus
    c.data = ml_collections.ConfigDict(dict(
        source="wiki_excerpt",      # 'wiki_excerpt' | 'lee' | 'files' | 'topics' (generated)
        files=(),                   # 'files': UTF-8 text, one sentence or document per line
        pretokenized=False,         # 'files': split on whitespace instead of tokenising
        encoding_errors="strict",   # 'files': bytes that are not UTF-8: 'strict' (stop) | 'replace' | 'ignore'
        lowercase=True,
        cache_dir="",               # '' = $RL_REPR_CACHE or ~/.cache/rl_repr
        min_count=5,
        max_vocab_size=0,           # 0 = no limit
        sample=1e-3,                # subsampling threshold; 0 disables
        max_sentence_length=10_000,  # gensim's limit: longer sentences are cut
        topics=ml_collections.ConfigDict(dict(  # 'topics': planted clusters
            num_topics=8, words_per_topic=20, num_sentences=3000, sentence_length=12)),
    ))
    # ---- model and loss
    # what predicts a word: 'skipgram' (a nearby word), 'cbow' (the mean of its window on both sides),
    # 'language_model' (the last `window` words, Bengio et al. 2003; its layers in language_model)
    c.context = "skipgram"
    c.language_model = ml_collections.ConfigDict(dict(hidden_dim=100, learning_rate=2e-3))
    c.dim = 100
    c.window = 5
    c.loss = "sgns"                 # 'sgns' | 'full_softmax' (small vocabularies)
    c.loss_impl = "slots"           # 'slots' (closed form) | 'fused' | 'vmap' (the library loss vmapped)
    c.negatives = 5                 # K per pair
    c.negative_sharing = "window"   # 'pair' (word2vec.c) | 'window' | 'row'
    c.shared_negatives = 20         # 'row': S noise words per row (a multiple of K)
    # ---- optimisation: plain SGD on the summed loss, linear decay as in word2vec
    c.epochs = 5
    c.alpha = 0.025
    c.min_alpha = 0.0001
    c.positions_per_row = 256       # T target positions per row
    c.rows = 0                      # rows per update, split over devices (0 = one per device)
    c.updates_per_step = 16         # SGD updates per compiled call (lax.scan)
    # ---- systems (and the shared keys of rl_repr.core.system)
    c.parallel = "shard_map"        # 'jit' | 'shard_map' | 'pmap'
    c.table_sync = "update"         # 'update' (synchronous SGD) | 'step' (Hogwild: replicas merge per step)
    c.compilation_cache_dir = ""    # '' = off; else JAX's persistent cache: later runs skip compiling
    # ---- bookkeeping and outputs
    c.log_every_steps = 50
    c.eval = ml_collections.ConfigDict(dict(
        wordsim=True, simlex=True, analogies=True, restrict_vocab=300_000,
        neighbours=("king", "computer", "music", "river", "war"), num_neighbours=8))
    c.export = ml_collections.ConfigDict(dict(word2vec_text=True, word2vec_binary=True, projector=True))
    return c


def word2vec_rules() -> list[cu.Rule]:
    """word2vec's own rules (the runner adds the system rules)."""
    return [
        cu.one_of("data.source", SOURCES),
        cu.Rule("data.files", lambda v, c: c.data.source != "files" or len(v) > 0,
                "a non-empty list of text files when data.source is 'files'"),
        cu.one_of("data.encoding_errors", ("strict", "replace", "ignore")),
        cu.positive_int("data.min_count"), cu.non_negative_int("data.max_vocab_size"),
        cu.in_interval("data.sample", 0.0, 1.0), cu.positive_int("data.max_sentence_length"),
        cu.positive_int("data.topics.num_topics"), cu.positive_int("data.topics.words_per_topic"),
        cu.positive_int("data.topics.num_sentences"), cu.positive_int("data.topics.sentence_length"),
        cu.one_of("context", CONTEXTS), cu.positive_int("language_model.hidden_dim"),
        cu.positive("language_model.learning_rate"),
        cu.Rule("loss", lambda v, c: v == "sgns" or c.context != "cbow", "'sgns' when context is 'cbow'"),
        cu.Rule("negative_sharing", lambda v, c: v == "window" or c.context == "skipgram",
                "'window' (K noise words per predicted word) when context is 'cbow' or 'language_model'"),
        cu.Rule("table_sync", lambda v, c: v == "update" or c.context != "language_model",
                "'update' when context is 'language_model' (its Adam state is one replica's)"),
        cu.positive_int("dim"), cu.positive_int("window"), cu.one_of("loss", LOSSES),
        cu.one_of("loss_impl", LOSS_IMPLEMENTATIONS), cu.positive_int("negatives"),
        cu.one_of("negative_sharing", NEGATIVE_SHARING),
        cu.Rule("shared_negatives",
                lambda v, c: c.negative_sharing != "row" or (v > 0 and v % c.negatives == 0),
                lambda c: f"a positive multiple of negatives={c.negatives} when negative_sharing is 'row'"),
        cu.positive_int("epochs"), cu.positive("alpha"), cu.non_negative("min_alpha"),
        cu.Rule("min_alpha", lambda v, c: v <= c.alpha, "at most alpha (the rate decays to it)"),
        cu.positive_int("positions_per_row"), cu.non_negative_int("rows"),
        cu.positive_int("updates_per_step"), cu.one_of("table_sync", TABLE_SYNC),
        cu.Rule("table_sync", lambda v, c: v == "update" or c.parallel != "jit",
                "'update' with parallel='jit' (XLA owns the jit driver's collectives); 'step' needs "
                "parallel='shard_map' or 'pmap'"),
        cu.positive_int("eval.restrict_vocab"),
        cu.positive_int("eval.num_neighbours"),
    ]
