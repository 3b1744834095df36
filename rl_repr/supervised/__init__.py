"""Supervised training and the course's classic experiments: ``config.method = "supervised"``.

``config``, ``data`` (images or scikit-learn tables, label noise, label fractions,
standardisation), ``noise``, ``model`` (CIFAR-style ResNets, ImageNet ResNets, MLPs), ``step``
(cross-entropy with label smoothing, distillation, adversarial examples), ``greedy`` (layer-wise
autoencoder pretraining), ``ladder`` (the optimisation ladder of the slides), ``evaluation``
(accuracy, calibration, robustness), ``trainer``.
"""
