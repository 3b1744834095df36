"""word2vec's config: every key, its default, and the rule it must satisfy.

Defaults are gensim's skip-gram settings (``Word2Vec(sg=1)``: dim 100, window 5,
negative 5, sample 1e-3, min_count 5, alpha 0.025 -> 0.0001, 5 epochs). Recipes in
``configs/word2vec_*.py`` start from :func:`word2vec_defaults`; the trainer calls
:func:`validate_word2vec_config` before anything compiles.
"""
from __future__ import annotations

import ml_collections

from rl_repr import config_utils as cu

SOURCES = ("wiki_excerpt", "lee", "files", "topics")
DRIVERS = ("jit", "shard_map", "pmap")
LOSSES = ("sgns", "full_softmax")
LOSS_IMPLEMENTATIONS = ("slots", "fused", "vmap")
NEGATIVE_SHARING = ("pair", "window", "row")
TABLE_SYNC = ("update", "step")


def word2vec_defaults() -> ml_collections.ConfigDict:
    """Skip-gram with negative sampling on gensim's Wikipedia excerpt, gensim's settings."""
    c = ml_collections.ConfigDict()
    c.method = "word2vec"
    c.seed = 0
    # ---- corpus
    c.data = ml_collections.ConfigDict(dict(
        source="wiki_excerpt",      # 'wiki_excerpt' | 'lee' | 'files' | 'topics' (generated)
        files=(),                   # 'files': UTF-8 text, one sentence or document per line
        pretokenized=False,         # 'files': split on whitespace instead of tokenising
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
    # ---- systems
    c.parallel = "shard_map"        # 'jit' | 'shard_map' | 'pmap'
    c.num_devices = 0               # 0 = every device
    c.cpu_devices = 0               # CPU: split the host into this many devices first (0 = JAX's default)
    c.table_sync = "update"         # 'update' (synchronous SGD) | 'step' (Hogwild: replicas merge per step)
    c.compilation_cache_dir = ""    # '' = off; else JAX's persistent cache: later runs skip compiling
    c.distributed = ml_collections.ConfigDict(dict(
        coordinator_address="", num_processes=1, process_id=0))
    # ---- bookkeeping and outputs
    c.log_every_steps = 50
    c.checkpoint_every_steps = 500
    c.eval = ml_collections.ConfigDict(dict(
        wordsim=True, simlex=True, analogies=True, restrict_vocab=300_000,
        neighbours=("king", "computer", "music", "river", "war"), num_neighbours=8))
    c.export = ml_collections.ConfigDict(dict(word2vec_text=True, word2vec_binary=True, projector=True))
    return c


def word2vec_rules() -> list[cu.Rule]:
    """Every rule a word2vec config must satisfy."""
    return [
        cu.one_of("method", ("word2vec",)),
        cu.one_of("data.source", SOURCES),
        cu.Rule("data.files", lambda v, c: c.data.source != "files" or len(v) > 0,
                "a non-empty list of text files when data.source is 'files'"),
        cu.positive_int("data.min_count"), cu.non_negative_int("data.max_vocab_size"),
        cu.in_interval("data.sample", 0.0, 1.0), cu.positive_int("data.max_sentence_length"),
        cu.positive_int("data.topics.num_topics"), cu.positive_int("data.topics.words_per_topic"),
        cu.positive_int("data.topics.num_sentences"), cu.positive_int("data.topics.sentence_length"),
        cu.positive_int("dim"), cu.positive_int("window"), cu.one_of("loss", LOSSES),
        cu.one_of("loss_impl", LOSS_IMPLEMENTATIONS), cu.positive_int("negatives"),
        cu.one_of("negative_sharing", NEGATIVE_SHARING),
        cu.Rule("shared_negatives",
                lambda v, c: c.negative_sharing != "row" or (v > 0 and v % c.negatives == 0),
                lambda c: f"a positive multiple of negatives={c.negatives} when negative_sharing is 'row'"),
        cu.positive_int("epochs"), cu.positive("alpha"), cu.non_negative("min_alpha"),
        cu.Rule("min_alpha", lambda v, c: v <= c.alpha, "at most alpha (the rate decays to it)"),
        cu.positive_int("positions_per_row"), cu.non_negative_int("rows"),
        cu.positive_int("updates_per_step"), cu.one_of("parallel", DRIVERS), cu.one_of("table_sync", TABLE_SYNC),
        cu.Rule("table_sync", lambda v, c: v == "update" or c.parallel != "jit",
                "'update' with parallel='jit' (XLA owns the jit driver's collectives); 'step' needs "
                "parallel='shard_map' or 'pmap'"),
        cu.non_negative_int("num_devices"), cu.non_negative_int("cpu_devices"), cu.positive_int("log_every_steps"),
        cu.positive_int("checkpoint_every_steps"), cu.positive_int("eval.restrict_vocab"),
        cu.positive_int("eval.num_neighbours"),
    ]


def validate_word2vec_config(config: ml_collections.ConfigDict) -> None:
    """Raises ``config_utils.ConfigError`` naming every bad key; unknown keys included."""
    known = word2vec_defaults()
    unknown = sorted(_keys(config) - _keys(known))
    if unknown:
        raise cu.ConfigError(f"config keys {unknown} are not word2vec settings; remove them "
                             f"(see rl_repr/train/word2vec_config.py for the keys).")
    cu.validate_config(config, word2vec_rules())


def _keys(config, prefix: str = "") -> set[str]:
    """Dotted paths of every leaf of a ConfigDict."""
    keys = set()
    for name, value in config.items():
        path = f"{prefix}{name}"
        keys |= _keys(value, path + ".") if isinstance(value, ml_collections.ConfigDict) else {path}
    return keys
