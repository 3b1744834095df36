"""Start from torchvision's ImageNet weights: a torchvision ResNet state dict as our variables.

``rl_repr.models.ResNet`` has torchvision's layout exactly (ResNet v1.5, symmetric padding,
convs without bias, batch norm with eps 1e-5), so its ported weights give the same logits;
only the names and the array layouts differ:

========================================  ====================================================
torchvision key                           rl_repr variable
========================================  ====================================================
``conv1.weight`` [O, I, kh, kw]           ``params/stem_conv/kernel`` [kh, kw, I, O]
``bn1.weight`` / ``bn1.bias``             ``params/stem_norm/scale`` / ``bias``
``bn1.running_mean`` / ``running_var``    ``batch_stats/stem_norm/mean`` / ``var``
``layer{s}.{b}.conv{i}.weight``           ``params/stage{s}_block{b+1}/conv{i}/kernel``
``layer{s}.{b}.bn{i}.*``                  ``.../stage{s}_block{b+1}/norm{i}/*``
``layer{s}.{b}.downsample.0.weight``      ``params/.../downsample_conv/kernel``
``layer{s}.{b}.downsample.1.*``           ``.../downsample_norm/*``
``fc.weight`` [classes, D] / ``fc.bias``  ``params/classifier/kernel`` [D, classes] / ``bias``
========================================  ====================================================

``*.num_batches_tracked`` (a counter torch keeps for its momentum-free mode) is dropped.
The depth is read from the keys (the number of blocks per stage, and whether blocks have a
``conv3``), and every array is checked against the shape our ``ResNet`` of that depth
expects. Example::

    import torch, torchvision
    state_dict = torchvision.models.resnet50(weights="IMAGENET1K_V2").state_dict()
    variables = import_torchvision_resnet(state_dict)               # with the 1000-way classifier
    model = ResNet(depth=50, num_classes=1000)
    logits = model.apply(variables, images_nhwc)                     # images normalised as torchvision's

Values may be torch tensors or numpy arrays (an ``.npz`` of the state dict, written by
``numpy.savez(path, **{k: v.numpy() for k, v in state_dict.items()})``, needs no torch).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.models.resnet import STAGE_SIZES, ResNet

__all__ = ["import_torchvision_resnet", "torchvision_resnet_depth"]

_BLOCK = re.compile(r"layer(\d)\.(\d+)\.(.+)")
_NORM_LEAVES = {"weight": ("params", "scale"), "bias": ("params", "bias"),
                "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def torchvision_resnet_depth(keys) -> int:
    """The depth (18/34/50/101/152) of a torchvision ResNet from its state-dict keys."""
    keys = list(keys)
    blocks = []
    for stage in range(1, 5):
        indices = {int(m.group(2)) for k in keys if (m := _BLOCK.fullmatch(k)) and m.group(1) == str(stage)}
        blocks.append(max(indices) + 1 if indices else 0)
    bottleneck = any(k.endswith(".conv3.weight") for k in keys)
    for depth, stages in STAGE_SIZES.items():
        if tuple(blocks) == stages and bottleneck == (depth >= 50):
            return depth
    raise ValueError(f"the state dict has {tuple(blocks)} blocks per stage ({'bottleneck' if bottleneck else 'basic'} "
                     "blocks), which is no torchvision ResNet-18/34/50/101/152; pass a torchvision ResNet's "
                     "state_dict().")


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def _destination(key: str) -> tuple[str, tuple[str, ...], str] | None:
    """``(collection, path, layout)`` for a torchvision key; None for a key that is dropped."""
    if key.endswith("num_batches_tracked"):
        return None
    module, _, leaf = key.rpartition(".")
    if module == "fc":
        return ("params", ("classifier", "kernel" if leaf == "weight" else "bias"), "dense" if leaf == "weight" else "")
    if module == "conv1":
        return ("params", ("stem_conv", "kernel"), "conv")
    if module == "bn1" and leaf in _NORM_LEAVES:
        collection, name = _NORM_LEAVES[leaf]
        return (collection, ("stem_norm", name), "")
    match = _BLOCK.fullmatch(module + "." + leaf)
    if not match:
        raise KeyError(key)
    stage, index, rest = match.groups()
    block = f"stage{stage}_block{int(index) + 1}"
    layer, _, leaf = rest.rpartition(".")
    if layer.startswith("conv") or layer == "downsample.0":
        return ("params", (block, "downsample_conv" if layer == "downsample.0" else layer, "kernel"), "conv")
    if (layer.startswith("bn") or layer == "downsample.1") and leaf in _NORM_LEAVES:
        collection, name = _NORM_LEAVES[leaf]
        return (collection, (block, "downsample_norm" if layer == "downsample.1" else "norm" + layer[2:], name), "")
    raise KeyError(key)


def import_torchvision_resnet(state_dict: Mapping[str, Any], *, include_classifier: bool = True) -> dict:
    """A torchvision ResNet state dict -> ``{'params': ..., 'batch_stats': ...}`` for our ResNet.

    Args:
      state_dict: torchvision's ``model.state_dict()`` (torch tensors or numpy arrays), any
        depth of 18/34/50/101/152.
      include_classifier: keep ``fc`` as ``classifier`` (for ``ResNet(num_classes=1000)``);
        False drops it, for ``ResNet(num_classes=None)`` features or a new head.

    Returns:
      Variables for ``ResNet(depth=torchvision_resnet_depth(state_dict), num_classes=1000 or
      None)`` (standard stem, width 1, batch norm), float32.

    Raises:
      ValueError: a key that no ResNet layer has, a layer missing, or an array whose shape is
        not the one our ResNet of that depth expects; one sentence naming them.
    """
    depth = torchvision_resnet_depth(state_dict.keys())
    variables: dict = {"params": {}, "batch_stats": {}}
    unknown = []
    for key, value in state_dict.items():
        try:
            destination = _destination(key)
        except KeyError:
            unknown.append(key)
            continue
        if destination is None or (destination[1][0] == "classifier" and not include_classifier):
            continue
        collection, path, layout = destination
        array = _as_numpy(value)
        if layout == "conv" and array.ndim == 4:
            array = array.transpose(2, 3, 1, 0)   # [O, I, kh, kw] -> [kh, kw, I, O]
        elif layout == "dense" and array.ndim == 2:
            array = array.T                        # [classes, D] -> [D, classes]
        node = variables[collection]
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = array
    if unknown:
        raise ValueError(f"state dict keys {unknown[:5]} (of {len(unknown)}) are no torchvision ResNet-{depth} "
                         "layer; pass the state_dict() of torchvision.models.resnet{depth} (a wrapped model's "
                         "keys may carry a prefix such as 'module.' to strip first).")
    _check_shapes(variables, depth, include_classifier)
    return variables


def _check_shapes(variables: dict, depth: int, include_classifier: bool) -> None:
    """Compares every array with the shape our ``ResNet`` of ``depth`` initialises."""
    classes = variables["params"].get("classifier", {}).get("bias")
    num_classes = int(classes.shape[0]) if include_classifier and classes is not None else None
    model = ResNet(depth=depth, num_classes=num_classes)
    expected = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))
    expected_shapes = {jax.tree_util.keystr(p): tuple(x.shape) for p, x in
                       jax.tree_util.tree_leaves_with_path({k: expected[k] for k in ("params", "batch_stats")})}
    given = {jax.tree_util.keystr(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(variables)}
    missing = sorted(set(expected_shapes) - set(given))
    wrong = sorted(k for k in set(expected_shapes) & set(given) if expected_shapes[k] != given[k])
    if missing or wrong:
        details = [f"missing {missing[:3]}"] if missing else []
        details += [f"{k} is {given[k]}, expected {expected_shapes[k]}" for k in wrong[:3]]
        raise ValueError(f"the state dict does not fit rl_repr's ResNet-{depth} ({'; '.join(details)}); pass an "
                         "unmodified torchvision ResNet state dict (a widened model such as wide_resnet50_2 has "
                         "other widths).")
