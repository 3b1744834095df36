"""CIFAR-style ResNets (He et al. 2016 Section 4.2) and the MLP: parameter counts and structure."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_repr.models import MLP, CifarResNet, cifar_blocks_per_stage


def _params(model, shape=(1, 32, 32, 3)):
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape)))
    return variables


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# The paper's Table 6 column "# params" (0.27M ... 1.7M) and the exact counts with option-A
# shortcuts, batch norm and 10 classes (conv + BN scale/bias + classifier).
PAPER = {20: (0.27, 269_722), 32: (0.46, 464_154), 44: (0.66, 658_586), 56: (0.85, 853_018), 110: (1.7, 1_727_962)}


@pytest.mark.parametrize("depth", sorted(PAPER))
def test_parameter_counts_match_the_paper(depth):
    count = _count(_params(CifarResNet(depth=depth))["params"])
    paper, exact = PAPER[depth]
    assert count == exact
    assert round(count / 1e6, 2 if depth < 110 else 1) == paper


def test_layer_count_is_6n_plus_2_and_option_b_adds_two_projections():
    params = _params(CifarResNet(depth=20))["params"]
    convs = [k for block in params.values() if isinstance(block, dict) for k in block if k.startswith("conv")]
    assert len(convs) + 2 == 20  # 18 block convs + the stem conv + the classifier (6n + 2)
    projected = _params(CifarResNet(depth=20, shortcut="B"))["params"]
    assert _count(projected) - _count(params) == (16 * 32 + 32 * 64) + 2 * (32 + 64)
    assert "downsample_conv" in projected["stage2_block1"] and "downsample_conv" not in params["stage2_block1"]


def test_option_a_shortcut_is_the_subsampled_input_zero_padded():
    """With its convs zeroed, the first block of stage 2 outputs relu(shortcut(x)), x its input."""
    model = CifarResNet(depth=8, norm="none", num_classes=None)
    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    zeroed = jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.zeros_like(v) if "stage2_block1" in jax.tree_util.keystr(p) else v, variables)
    _, state = jax.jit(lambda v, x: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]))(zeroed, x)
    block_input = state["intermediates"]["stage1_block1"]["__call__"][0]      # [2, 8, 8, 16]
    block_output = state["intermediates"]["stage2_block1"]["__call__"][0]     # [2, 4, 4, 32]
    expected = jnp.pad(block_input[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (0, 16)))
    np.testing.assert_allclose(block_output, nn.relu(expected), atol=1e-6)


def test_plain_network_has_no_shortcut_and_same_parameters_as_option_a():
    plain = _params(CifarResNet(depth=20, residual=False))["params"]
    assert _count(plain) == 269_722 and "downsample_conv" not in plain["stage2_block1"]
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
    model = CifarResNet(depth=8)
    variables = jax.jit(model.init)(jax.random.key(0), x)
    logits, updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert not np.allclose(updates["batch_stats"]["stem_norm"]["mean"], 0.0)  # training mode moved them
    h = jax.eval_shape(lambda: CifarResNet(depth=14, num_classes=None, width_multiplier=0.5).init_with_output(
        jax.random.key(0), x)[0])
    assert h.shape == (2, 32)


@pytest.mark.parametrize("norm", ["group", "layer", "instance", "none"])
def test_any_norm_and_none(norm):
    variables = _params(CifarResNet(depth=8, norm=norm), (2, 8, 8, 1))
    assert "batch_stats" not in variables
    assert ("bias" in variables["params"]["stem_conv"]) == (norm == "none")


def test_bad_depth_is_one_sentence():
    assert cifar_blocks_per_stage(56) == 9
    with pytest.raises(ValueError, match="6n \\+ 2"):
        cifar_blocks_per_stage(51)


def test_mlp_blocks_activations_and_norms():
    x = jax.random.normal(jax.random.key(0), (4, 2, 3))  # flattened to 6 features
    variables = _params(MLP(hidden=(5, 7), num_classes=3, activation="sigmoid", norm="batch"), x.shape)
    assert set(variables["params"]) == {"block1", "block2", "classifier"}
    assert "bias" not in variables["params"]["block1"]["dense"]  # the norm brings the shift
    assert variables["batch_stats"]["block1"]["norm"]["mean"].shape == (5,)
    model = MLP(hidden=(5,), num_classes=None, activation="sigmoid")
    hidden = jax.jit(lambda x: model.init_with_output(jax.random.key(0), x)[0])(x)
    assert hidden.shape == (4, 5) and bool(jnp.all((hidden > 0) & (hidden < 1)))
    assert _params(MLP(hidden=(), num_classes=3), x.shape)["params"]["classifier"]["kernel"].shape == (6, 3)
    with pytest.raises(ValueError, match="activation"):
        _params(MLP(activation="swish"), x.shape)
