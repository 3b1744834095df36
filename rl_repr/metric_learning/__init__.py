"""Triplet and Siamese metric learning with online mining: ``config.method = "metric_learning"``.

``config``, ``model`` (a conv or ResNet trunk, a dense layer, L2 normalisation), ``step`` (PK
batches, mining on the global batch), ``trainer``, ``evaluation`` (few-shot episodes,
verification and recall@k on held-out classes).
"""
