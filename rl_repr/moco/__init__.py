"""MoCo v1 and v2 (He et al. 2020; Chen et al. 2020): ``config.method = "moco"``.

``config`` (defaults and rules), ``state`` (the key encoder, the queue split over the devices and
its write pointer), ``shuffle_bn`` (the key batch permuted across every device and host before
the key encoder, and back), ``step`` (InfoNCE against the sharded queue, momentum update,
enqueue), ``trainer`` (the plan the runner runs).
"""
