"""The machinery every method shares (importing this package is cheap; import the modules).

* ``runner`` -- ``run(method, config, workdir)``: validate, workdir, devices, the method's plan,
  compile, the loop, the final evaluation; ``registry`` finds methods by name;
* ``loop`` (the shared training loop), ``state`` (``TrainState``), ``drivers`` (jit /
  shard_map / pmap), ``mesh`` (devices, multi-host), ``checkpoint`` (orbax, checksums),
  ``metrics`` (JSONL, TensorBoard, progress), ``workdir`` (lock, config changes);
* ``config`` (rules), ``recipes`` (recipe files, launch arguments, the command line's flags),
  ``system`` (the settings every method shares), ``optim`` (LARS, LR scaling, warmup + cosine);
* ``errors`` (the user's mistakes, one sentence each), ``extras`` (optional dependencies),
  ``files`` (atomic writes), ``log`` (the ``rl_repr`` logger).
"""
