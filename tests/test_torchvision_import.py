"""torchvision ResNet state dicts -> rl_repr variables: names and shapes for every depth (from a
committed list of torchvision's keys and shapes), and the logits where torch is installed."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_repr.models import ResNet, import_torchvision_resnet, torchvision_resnet_depth

KEYS_FILE = os.path.join(os.path.dirname(__file__), "data", "torchvision_resnet_keys.json")
with open(KEYS_FILE) as f:
    TORCHVISION = json.load(f)["models"]


def _zeros_state_dict(name):
    """torchvision's keys with zero arrays of its shapes (strided views: no memory)."""
    return {k: np.broadcast_to(np.float32(0), shape) for k, shape in TORCHVISION[name].items()}


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_every_torchvision_key_maps_onto_our_resnet(depth):
    state_dict = _zeros_state_dict(f"resnet{depth}")
    assert torchvision_resnet_depth(state_dict) == depth
    variables = import_torchvision_resnet(state_dict)  # checks every shape against our ResNet
    ours = jax.eval_shape(lambda: ResNet(depth=depth, num_classes=1000).init(jax.random.key(0),
                                                                             jnp.zeros((1, 64, 64, 3))))
    for collection in ("params", "batch_stats"):
        expected = {jax.tree_util.keystr(p): x.shape for p, x in jax.tree_util.tree_leaves_with_path(ours[collection])}
        given = {jax.tree_util.keystr(p): x.shape for p, x in
                 jax.tree_util.tree_leaves_with_path(variables[collection])}
        assert given == expected
    # every torchvision tensor but the batch counters has a place, and the counts agree
    kept = [k for k in TORCHVISION[f"resnet{depth}"] if not k.endswith("num_batches_tracked")]
    assert len(kept) == len(jax.tree.leaves(variables))


def test_layouts_are_transposed_and_names_mapped():
    rng = np.random.default_rng(0)
    state_dict = {k: rng.normal(size=s).astype(np.float32) for k, s in TORCHVISION["resnet18"].items()}
    variables = import_torchvision_resnet(state_dict)
    params, stats = variables["params"], variables["batch_stats"]
    np.testing.assert_array_equal(params["stem_conv"]["kernel"], state_dict["conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(params["classifier"]["kernel"], state_dict["fc.weight"].T)
    np.testing.assert_array_equal(params["stage2_block1"]["downsample_conv"]["kernel"],
                                  state_dict["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(params["stage4_block2"]["norm2"]["scale"], state_dict["layer4.1.bn2.weight"])
    np.testing.assert_array_equal(stats["stage3_block1"]["downsample_norm"]["var"],
                                  state_dict["layer3.0.downsample.1.running_var"])
    np.testing.assert_array_equal(stats["stem_norm"]["mean"], state_dict["bn1.running_mean"])
    assert "classifier" not in import_torchvision_resnet(state_dict, include_classifier=False)["params"]


def test_bad_state_dicts_are_one_sentence():
    state_dict = _zeros_state_dict("resnet18")
    with pytest.raises(ValueError, match="module.conv1.weight"):
        import_torchvision_resnet({**state_dict, "module.conv1.weight": state_dict["conv1.weight"]})
    missing = {k: v for k, v in state_dict.items() if k != "layer1.0.bn1.running_var"}
    with pytest.raises(ValueError, match="missing"):
        import_torchvision_resnet(missing)
    wide = {**state_dict, "layer1.0.conv1.weight": np.zeros((128, 64, 3, 3), np.float32)}
    with pytest.raises(ValueError, match="expected"):
        import_torchvision_resnet(wide)
    with pytest.raises(ValueError, match="blocks per stage"):
        torchvision_resnet_depth(["conv1.weight", "layer1.0.conv1.weight"])


@pytest.mark.parametrize("depth", [18, 50])
def test_logits_match_torchvision(depth):
    """Benchmark environment only (torch is not a test dependency): ported weights give the same logits."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = getattr(torchvision.models, f"resnet{depth}")().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = model(images).numpy()
    ours = ResNet(depth=depth, num_classes=1000).apply(import_torchvision_resnet(model.state_dict()),
                                                        jnp.asarray(images.numpy().transpose(0, 2, 3, 1)))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(np.asarray(ours) / scale, expected / scale, atol=2e-5)
