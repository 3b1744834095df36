"""word2vec: ``config.method = "word2vec"``.

``config``, ``step`` and ``slots`` (skip-gram with negative sampling, sharded sparse SGD),
``trainer``, ``evaluation`` (WordSim-353, SimLex-999, analogies, neighbours), ``export``
(word2vec text/binary formats, TensorBoard projector).
"""
