"""word2vec on a generated corpus with planted topics: seconds on a laptop, no downloads.

    python -m rl_repr.main --config=configs/word2vec_tiny.py --workdir=/tmp/w2v_tiny
    python -m rl_repr.main --config=configs/word2vec_tiny.py:lee ...        # gensim's Lee corpus

Each generated sentence draws its words from one of 8 topics, so trained vectors should
sit nearest words of their own topic: ``results.json`` reports
``topic_neighbour_accuracy`` (chance 1/8). ``:lee`` trains on gensim's
``lee_background.cor`` news sentences instead (needs gensim).
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.word2vec.config import word2vec_defaults


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/word2vec_tiny.py", tokens=("lee",))
    c = word2vec_defaults()
    c.data.source = "topics"
    c.data.min_count = 1
    c.data.sample = 0.0
    c.dim = 16
    c.window = 3
    c.epochs = 3
    c.positions_per_row = 64
    c.updates_per_step = 4
    c.log_every_steps = 20
    c.checkpoint_every_steps = 100
    if "lee" in args:
        c.data.source = "lee"
        c.data.min_count = 2
        c.data.sample = 1e-3
        c.dim = 50
        c.epochs = 10
    return c
