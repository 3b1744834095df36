"""word2vec skip-gram on gensim's Wikipedia excerpt (about 453k tokens), gensim's settings.

    python -m rl_repr.main --config=configs/word2vec_wiki.py --workdir=/tmp/w2v_wiki
    python -m rl_repr.main --config=configs/word2vec_wiki.py:runlocal ...   # a few-second smoke run

dim 100, window 5, 5 negatives, sample 1e-3, min_count 5, alpha 0.025 -> 0.0001, 5 epochs
(gensim ``Word2Vec(sg=1)`` defaults). Negatives are shared by the pairs of one window
(HogBatch-style) and each SGD update sees 256 targets per device (larger updates sum too
many pair gradients per row and lose quality: 1024 costs about 0.03 WordSim Spearman).
On a CPU the host is split into one JAX device per core, each a Hogwild worker with its
own rows and its own replica of the tables, merged every 64 updates (``table_sync='step'``;
gensim's worker threads share their tables the same way, racing): on 2 cores, faster than
the single device and than gensim at the same quality (benchmarks/word2vec_vs_gensim.py).
Measured next to gensim in benchmarks/word2vec_vs_gensim.py. The excerpt is extracted
once with gensim's WikiCorpus and cached (gensim must be installed).
"""
import os

from rl_repr.core.recipes import launch_arguments
from rl_repr.word2vec.config import word2vec_defaults


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/word2vec_wiki.py", tokens=("runlocal",))
    c = word2vec_defaults()
    c.data.source = "wiki_excerpt"
    c.cpu_devices = os.cpu_count() or 1  # no effect on a GPU/TPU machine
    c.table_sync = "step"
    c.updates_per_step = 64
    if "runlocal" in args:
        c.epochs = 1
        c.dim = 32
        c.data.max_vocab_size = 2000
        c.log_every_steps = 10
        c.export.projector = False
    return c
