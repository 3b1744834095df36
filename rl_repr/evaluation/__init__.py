"""Evaluating representations, shared by every method.

* :mod:`~rl_repr.evaluation.features` -- run a frozen encoder over a dataset in batches;
* :mod:`~rl_repr.evaluation.knn` -- weighted kNN accuracy (the kNN monitor);
* :mod:`~rl_repr.evaluation.linear_probe` -- logistic regression on frozen features (L-BFGS);
* :mod:`~rl_repr.evaluation.frozen` -- the protocol: linear probe + kNN next to raw-pixel and
  random-init baselines;
* :mod:`~rl_repr.evaluation.finetune` -- fine-tuning on 1% / 10% of the labels (SimCLR Table 7);
* :mod:`~rl_repr.evaluation.few_shot` -- N-way K-shot episodes, pair verification, recall@k.

Word-vector benchmarks belong to word2vec (``rl_repr.word2vec.evaluation``).
"""
