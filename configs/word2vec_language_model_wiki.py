"""A next-word language model on gensim's Wikipedia excerpt, for its word vectors (Bengio et al. 2003).

    python -m rl_repr.main --config=configs/word2vec_language_model_wiki.py --workdir=/tmp/lm_wiki
    python -m rl_repr.main --config=configs/word2vec_language_model_wiki.py:runlocal ...   # a smoke run

``configs/word2vec_wiki.py``'s corpus, vocabulary, subsampling, noise words, dimension and
epochs, with ``context='language_model'``: the last 4 words (concatenated, a tanh layer of 100)
predict the next one against 5 noise words (``rl_repr/word2vec/language_model.py``). Every
parameter is dense (Adam at 2e-3 times word2vec's linear decay; 5e-4 and 1e-2 scored lower on
WordSim-353 in a first probe), so updates stay synchronous on one device (``table_sync='update'``,
the ``jit`` driver), 16 updates of 256 targets per compiled call.
"""
import os

from rl_repr.core.recipes import load_config_file


def get_config(arg: str | None = None):
    c = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "word2vec_wiki.py"), arg)
    c.context = "language_model"
    c.window = 4
    c.language_model.update(hidden_dim=100, learning_rate=2e-3)
    c.table_sync = "update"
    c.parallel = "jit"
    c.cpu_devices = 0
    c.num_devices = 1
    c.updates_per_step = 16
    return c
