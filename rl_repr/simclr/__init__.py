"""SimCLR (Chen et al. 2020): ``config.method = "simclr"``.

``config`` (defaults and rules), ``model`` (encoder f + projection head g), ``step`` (one
update: two views, NT-Xent with negatives from every device, LARS), ``gradient_cache``
(representation caching for batches larger than memory), ``trainer`` (the plan the runner runs),
``evaluation`` (kNN monitor, linear probe and kNN next to baselines, fine-tuning).
"""
