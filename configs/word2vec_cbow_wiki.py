"""word2vec CBOW on gensim's Wikipedia excerpt: ``configs/word2vec_wiki.py`` with ``context='cbow'``.

    python -m rl_repr.main --config=configs/word2vec_cbow_wiki.py --workdir=/tmp/cbow_wiki
    python -m rl_repr.main --config=configs/word2vec_cbow_wiki.py:runlocal ...   # a few-second smoke run

The mean of each word's dynamic window (up to 5 words on each side) predicts the word, with 5
noise words per target: gensim's ``Word2Vec(sg=0)`` defaults (``cbow_mean=1``, alpha 0.025 ->
0.0001, sample 1e-3, min_count 5, dim 100, 5 epochs) and its update of the context vectors
(each gets the whole gradient of the mean; ``rl_repr/word2vec/cbow.py``). Everything else,
Hogwild workers included, is the skip-gram recipe's. Measured next to gensim by
``benchmarks/word2vec_vs_gensim.py --context cbow``.
"""
import os

from rl_repr.core.recipes import load_config_file


def get_config(arg: str | None = None):
    c = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "word2vec_wiki.py"), arg)
    c.context = "cbow"
    return c
