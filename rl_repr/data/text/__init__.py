"""Text data for word embeddings: ``vocab`` (corpora, tokenising, the vocabulary, encoded
sentences) and ``batches`` (subsampling, the noise distribution, skip-gram batches that are a
pure function of the step)."""
