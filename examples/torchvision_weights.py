"""Starting from torchvision's ImageNet weights: port a ResNet state dict once, use it in JAX.

Where torch is installed, save the state dict as a plain ``.npz`` (no torch needed afterwards)::

    import numpy as np, torchvision
    state_dict = torchvision.models.resnet50(weights="IMAGENET1K_V2").state_dict()
    np.savez("resnet50_imagenet.npz", **{k: v.numpy() for k, v in state_dict.items()})

then, in JAX (``models.import_torchvision_resnet`` renames every array and transposes the
kernels; ``--config.model.torchvision_weights=resnet50_imagenet.npz`` does the same for a
supervised run)::

    variables = models.import_torchvision_resnet(dict(np.load("resnet50_imagenet.npz")))
    logits = models.ResNet(depth=50, num_classes=1000).apply(variables, images_nhwc)

This script runs the second half on a stand-in file, so it needs neither torch nor a download:
a ResNet-18 state dict with torchvision's names and layouts (``[O, I, kh, kw]`` kernels,
``fc.weight`` as ``[classes, D]``, ``num_batches_tracked`` counters), written from random
variables of our own ResNet-18. It checks that the ported variables give exactly the logits of
the variables the stand-in was written from, and that features without the classifier work::

    python examples/torchvision_weights.py
"""

import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr import models


def torchvision_names(variables: dict) -> dict:
    """Our ResNet-18/34 variables under torchvision's state-dict names and layouts."""
    state = {}

    def norm(prefix, params, stats):
        state.update({f"{prefix}.weight": params["scale"], f"{prefix}.bias": params["bias"],
                      f"{prefix}.running_mean": stats["mean"], f"{prefix}.running_var": stats["var"],
                      f"{prefix}.num_batches_tracked": np.array(0)})

    params, stats = variables["params"], variables["batch_stats"]
    state["conv1.weight"] = params["stem_conv"]["kernel"].transpose(3, 2, 0, 1)
    norm("bn1", params["stem_norm"], stats["stem_norm"])
    for name, block in params.items():
        if not name.startswith("stage"):
            continue
        stage, index = name[len("stage"):].split("_block")
        prefix = f"layer{stage}.{int(index) - 1}"
        for layer, torch_layer in (("conv1", "conv1"), ("conv2", "conv2"), ("downsample_conv", "downsample.0")):
            if layer in block:
                state[f"{prefix}.{torch_layer}.weight"] = block[layer]["kernel"].transpose(3, 2, 0, 1)
        for layer, torch_layer in (("norm1", "bn1"), ("norm2", "bn2"), ("downsample_norm", "downsample.1")):
            if layer in block:
                norm(f"{prefix}.{torch_layer}", block[layer], stats[name][layer])
    state["fc.weight"], state["fc.bias"] = params["classifier"]["kernel"].T, params["classifier"]["bias"]
    return {k: np.asarray(v) for k, v in state.items()}


def main():
    model = models.ResNet(depth=18, num_classes=1000)
    images = jax.random.uniform(jax.random.key(0), (2, 64, 64, 3))
    original = model.init(jax.random.key(1), images)
    # trained-looking running statistics, so that a mix-up of mean and variance would show
    original = {**original, "batch_stats": jax.tree.map(
        lambda x: x + jax.random.uniform(jax.random.key(2), x.shape, minval=0.1, maxval=1.0),
        original["batch_stats"])}
    original = jax.tree.map(np.asarray, original)

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "resnet18_torchvision_layout.npz")
        np.savez(path, **torchvision_names(original))
        state_dict = dict(np.load(path))
    print(f"stand-in state dict: {len(state_dict)} arrays, e.g. conv1.weight {state_dict['conv1.weight'].shape}")

    depth = models.torchvision_resnet_depth(state_dict)
    variables = models.import_torchvision_resnet(state_dict)
    logits = model.apply(variables, images)
    expected = model.apply(original, images)
    np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-6)
    print(f"ResNet-{depth}: ported logits {logits.shape} equal the original's "
          f"(max |difference| {float(jnp.max(jnp.abs(logits - expected))):.1e})")

    features = models.ResNet(depth=18, num_classes=None).apply(
        models.import_torchvision_resnet(state_dict, include_classifier=False), images)
    print(f"without the classifier: features {features.shape} for a linear probe or a new head")
    assert features.shape == (2, 512)


if __name__ == "__main__":
    main()
