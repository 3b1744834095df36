"""Self-supervised pretext tasks, alone or together: ``config.method = "pretext"``.

``rotation``, ``patches`` (relative position), ``permutations`` (jigsaw), ``inpainting`` (each
task's inputs and labels, made on the device), ``tasks`` (the registry of tasks), ``model``
(shared encoder, one head per task, the inpainting decoder), ``step``, ``config``, ``trainer``,
``evaluation`` (each task on test images, the frozen-encoder report, zero-shot recognition).
"""
