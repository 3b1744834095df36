"""rl_repr.models: ResNet structure (torchvision parameter counts, shapes), norm
switching, batch_stats handling, plain variant, sharding, dtype policy, and
projection heads against numpy."""
import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rl_repr import models
from rl_repr.models.norm_choice import norm_factory

TORCHVISION_PARAM_COUNTS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032,
                            101: 44_549_160, 152: 60_192_808}
TINY = dict(depth=18, width_multiplier=0.125, small_image_stem=True)  # 8..64 channels


def count(tree):
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def abstract_variables(model, input_shape, **kwargs):
    """Variables' shapes and dtypes without allocating or computing anything."""
    return jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros(input_shape), train=False, **kwargs))


def abstract_init(model, input_shape, **kwargs):
    """(output, variables) of ``init_with_output`` as shapes: one trace, no compute."""
    return jax.eval_shape(lambda: model.init_with_output(
        jax.random.key(0), jnp.zeros(input_shape), train=False, **kwargs))


def images(n=8, size=16, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, size, size, 3)), jnp.float32)


def init(model, x, **kwargs):
    """Jitted init with an RBG key: XLA compiles threefry random bits for every
    parameter shape, which makes a ResNet init take ~5x longer to compile on CPU."""
    key = jax.random.key(0, impl="rbg")
    return jax.jit(functools.partial(model.init, **kwargs))(key, x)


def apply(model, variables, x, **kwargs):
    return jax.jit(functools.partial(model.apply, **kwargs))(variables, x)


@pytest.fixture(scope="module")
def tiny_bn():
    """A ResNet-18 at width 1/8 (8..64 channels), its variables, and its jitted
    training step, compiled once and shared by the forward-pass tests."""
    model = models.ResNet(**TINY, num_classes=10)
    variables = init(model, images(), train=False)
    train_step = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
    return model, variables, train_step


# --------------------------------------------------------------------------
# Structure: parameter counts and shapes (eval_shape: no compute).
# --------------------------------------------------------------------------
@pytest.mark.parametrize("depth", sorted(TORCHVISION_PARAM_COUNTS))
def test_parameter_count_and_output_shapes_for_each_depth_and_stem(depth):
    expansion = 1 if depth < 50 else 4
    last_block = f"stage4_block{models.STAGE_SIZES[depth][-1]}"
    # ImageNet stem and classifier: 224 -> 112 (conv) -> 56 (pool) -> 56, 28, 14, 7.
    logits, variables = abstract_init(models.ResNet(depth=depth, num_classes=1000),
                                      (2, 224, 224, 3), capture_intermediates=True)
    assert count(variables["params"]) == TORCHVISION_PARAM_COUNTS[depth]
    # Running statistics live apart from the parameters: one mean and var per norm channel.
    norm_scales = [v for k, v in flatten_dict(variables["params"]).items() if k[-1] == "scale"]
    assert count(variables["batch_stats"]) == 2 * count(norm_scales)
    assert logits.shape == (2, 1000) and logits.dtype == jnp.float32
    assert variables["intermediates"][last_block]["__call__"][0].shape == (2, 7, 7, 512 * expansion)
    # Small-image stem, no classifier: no downsampling before stage 2, so 32 -> 32, 16, 8, 4.
    h, variables = abstract_init(models.ResNet(depth=depth, small_image_stem=True),
                                 (2, 32, 32, 3), capture_intermediates=True)
    assert h.shape == (2, models.resnet_feature_dim(depth))
    assert variables["intermediates"][last_block]["__call__"][0].shape == (2, 4, 4, 512 * expansion)
    assert variables["params"]["stem_conv"]["kernel"].shape == (3, 3, 3, 64)
    assert "classifier" not in variables["params"]


def test_feature_dim_and_width_multiplier():
    assert models.resnet_feature_dim(18) == 512 and models.resnet_feature_dim(50) == 2048
    assert models.resnet_feature_dim(50, 2.0) == 4096 and models.resnet_feature_dim(50, 4.0) == 8192
    assert models.resnet_feature_dim(18, 0.125) == 64
    h, variables = abstract_init(models.ResNet(depth=50, width_multiplier=2.0), (1, 64, 64, 3))
    assert h.shape == (1, 4096)
    assert variables["params"]["stem_conv"]["kernel"].shape == (7, 7, 3, 128)


@pytest.mark.parametrize("norm", ["group", "layer", "instance"])
def test_norm_swap_keeps_parameter_layout_and_drops_batch_stats(norm):
    bn = abstract_variables(models.ResNet(depth=50, num_classes=1000), (1, 32, 32, 3))
    other = abstract_variables(models.ResNet(depth=50, num_classes=1000, norm=norm), (1, 32, 32, 3))
    assert "batch_stats" not in other
    chex.assert_trees_all_equal_shapes(other["params"], bn["params"])


def test_plain_variant_has_no_shortcut_parameters():
    plain = abstract_variables(models.ResNet(depth=50, residual=False), (1, 32, 32, 3))
    residual = abstract_variables(models.ResNet(depth=50), (1, 32, 32, 3))
    plain_keys = set(flatten_dict(plain["params"]))
    residual_keys = set(flatten_dict(residual["params"]))
    assert not any("downsample_conv" in "/".join(k) for k in plain_keys)
    assert plain_keys == {k for k in residual_keys if not k[1].startswith("downsample")}


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="depth=20"):
        abstract_variables(models.ResNet(depth=20), (1, 32, 32, 3))
    with pytest.raises(ValueError, match="norm='weight'"):
        abstract_variables(models.ResNet(depth=18, norm="weight"), (1, 32, 32, 3))
    with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
        abstract_variables(models.ResNet(depth=18), (32, 32, 3))


# --------------------------------------------------------------------------
# Blocks: residual vs plain, zero-init of the last norm.
# --------------------------------------------------------------------------
@pytest.mark.parametrize("block_class", [models.BasicBlock, models.BottleneckBlock])
def test_zero_init_block_is_identity_with_skip_and_zero_without(block_class):
    conv = functools.partial(nn.Conv, use_bias=False)
    norm = norm_factory("batch", train=False, dtype=jnp.float32)
    features = 8 // block_class.expansion  # output width 8 = input width: no projection
    x = jax.nn.relu(images(n=2, size=4))[..., :1].repeat(8, axis=-1)
    block = functools.partial(block_class, features=features, conv=conv, norm=norm,
                              zero_init_last_norm=True)
    variables = init(block(), x)  # same variables with or without the skip (no projection)
    last = "norm2" if block_class is models.BasicBlock else "norm3"
    np.testing.assert_array_equal(variables["params"][last]["scale"], 0.0)
    # With the skip the block starts as the identity on non-negative inputs ...
    chex.assert_trees_all_close(apply(block(residual=True), variables, x), x, atol=1e-6)
    # ... without it, its output is relu(0 * ... + 0) = 0: nothing passes through.
    chex.assert_trees_all_close(apply(block(residual=False), variables, x), jnp.zeros_like(x))


# --------------------------------------------------------------------------
# Forward passes of a tiny ResNet-18.
# --------------------------------------------------------------------------
def test_batch_stats_update_only_in_training(tiny_bn):
    model, variables, train_step = tiny_bn
    x = images()
    logits, updates = train_step(variables, x)
    assert logits.shape == (8, 10) and logits.dtype == jnp.float32
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                           updates["batch_stats"], variables["batch_stats"])
    assert all(jax.tree.leaves(changed)), "every running statistic should move in training"
    # Evaluation: nothing changes even when the collection is mutable.
    _, eval_updates = apply(model, variables, x, train=False, mutable=["batch_stats"])
    chex.assert_trees_all_equal(eval_updates["batch_stats"], variables["batch_stats"])
    # Training without mutable=['batch_stats'] is an error rather than a silent no-op.
    with pytest.raises(Exception, match="batch_stats"):
        jax.eval_shape(functools.partial(model.apply, train=True), variables, x)


def test_group_norm_model_is_per_example_and_mode_free(tiny_bn):
    # Same parameter layout as the BN model: only the norm switch changes.
    model = models.ResNet(**TINY, num_classes=10, norm="group")
    variables = {"params": tiny_bn[1]["params"]}
    x = images()
    x_other = x.at[1:].set(images(n=7, seed=5))  # same first image, different batch mates
    step = jax.jit(model.apply, static_argnames="train")
    logits_train = step(variables, x, train=True)
    chex.assert_trees_all_close(step(variables, x, train=False), logits_train, atol=1e-6)
    chex.assert_trees_all_close(step(variables, x_other, train=True)[0], logits_train[0],
                                atol=1e-5)


def test_jit_with_batch_sharded_input_equals_single_device(tiny_bn):
    _, variables, train_step = tiny_bn
    x = images()
    expected = train_step(variables, x)
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    x_sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
    replicated = jax.device_put(variables, NamedSharding(mesh, P()))
    logits, updates = train_step(replicated, x_sharded)
    chex.assert_trees_all_close((logits, updates), expected, atol=1e-4, rtol=1e-4)
    assert logits.sharding.is_equivalent_to(NamedSharding(mesh, P("data")), logits.ndim)


def test_shard_map_with_bn_axis_name_equals_single_device(tiny_bn):
    _, variables, train_step = tiny_bn
    x = images()
    model = models.ResNet(**TINY, num_classes=10, bn_axis_name="data")
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    local_step = functools.partial(model.apply, train=True, mutable=["batch_stats"])
    step = jax.jit(jax.shard_map(local_step, mesh=mesh, in_specs=(P(), P("data")),
                                 out_specs=(P("data"), P())))
    chex.assert_trees_all_close(step(variables, x), train_step(variables, x),
                                atol=1e-4, rtol=1e-4)


def test_bfloat16_compute_keeps_float32_params(tiny_bn):
    _, variables, train_step = tiny_bn
    model = models.ResNet(**TINY, num_classes=10, dtype=jnp.bfloat16)
    abstract = abstract_variables(model, (8, 16, 16, 3))
    assert {leaf.dtype for leaf in jax.tree.leaves(abstract)} == {jnp.dtype(jnp.float32)}
    chex.assert_trees_all_equal_shapes(abstract, variables)
    x = images()
    logits, state = apply(model, variables, x, train=True, capture_intermediates=True,
                          mutable=["batch_stats", "intermediates"])
    assert state["intermediates"]["stage1_block1"]["conv1"]["__call__"][0].dtype == jnp.bfloat16
    assert logits.dtype == jnp.float32
    assert {leaf.dtype for leaf in jax.tree.leaves(state["batch_stats"])} == {
        jnp.dtype(jnp.float32)}
    logits32, _ = train_step(variables, x)
    np.testing.assert_allclose(logits, logits32, atol=0.1, rtol=0.1)


# --------------------------------------------------------------------------
# Projection heads.
# --------------------------------------------------------------------------
def np_batch_norm(a, gamma, beta, eps=1e-5):
    return gamma * (a - a.mean(0)) / np.sqrt(a.var(0) + eps) + beta


@pytest.mark.parametrize("num_layers", [0, 1, 2, 3])
def test_projection_head_shapes_and_intermediates(num_layers):
    h = images(n=6, size=2).reshape(6, 12)
    head = models.ProjectionHead(num_layers=num_layers, output_dim=5)
    variables = head.init(jax.random.key(0, impl="rbg"), h, train=False)
    (z, intermediates), _ = head.apply(variables, h, train=True, mutable=["batch_stats"])
    assert len(intermediates) == num_layers + 1
    chex.assert_trees_all_close(intermediates[0], h)
    assert z is intermediates[-1]
    expected_widths = [12] + [12] * max(num_layers - 1, 0) + ([5] if num_layers else [])
    assert [a.shape for a in intermediates] == [(6, w) for w in expected_widths]
    for i in range(1, num_layers + 1):
        layer = variables["params"][f"dense{i}"]
        assert "bias" not in layer, "the norm after the dense layer supplies the shift"
        assert ("bias" in variables["params"][f"norm{i}"]) == (i < num_layers)


def test_projection_head_with_batch_norm_matches_numpy():
    rng = np.random.default_rng(3)
    h = rng.normal(size=(16, 6)).astype(np.float32)
    head = models.ProjectionHead(num_layers=2, hidden_dim=7, output_dim=3)
    variables = head.init(jax.random.key(1, impl="rbg"), h, train=False)
    params = jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=p.shape) * 0.5 + (1.0 if p.ndim == 1 else 0.0),
                              jnp.float32), variables["params"])
    variables = {**variables, "params": params}
    (z, (h0, a1, a2)), _ = head.apply(variables, h, train=True, mutable=["batch_stats"])
    p = jax.tree.map(np.asarray, params)
    ref_a1 = np.maximum(np_batch_norm(h @ p["dense1"]["kernel"], p["norm1"]["scale"],
                                      p["norm1"]["bias"]), 0.0)
    ref_z = np_batch_norm(ref_a1 @ p["dense2"]["kernel"], p["norm2"]["scale"], 0.0)
    chex.assert_trees_all_close((a1, z), (ref_a1, ref_z), atol=1e-4, rtol=1e-4)


def test_projection_head_without_norm_is_a_plain_mlp():
    rng = np.random.default_rng(4)
    h = rng.normal(size=(4, 6)).astype(np.float32)
    head = models.ProjectionHead(num_layers=2, output_dim=3, use_norm=False)
    variables = head.init(jax.random.key(2, impl="rbg"), h, train=True)
    assert set(variables) == {"params"}
    z, _ = head.apply(variables, h, train=True)
    p = jax.tree.map(np.asarray, variables["params"])
    hidden = np.maximum(h @ p["dense1"]["kernel"] + p["dense1"]["bias"], 0.0)
    chex.assert_trees_all_close(z, hidden @ p["dense2"]["kernel"] + p["dense2"]["bias"],
                                atol=1e-5, rtol=1e-5)


def test_resnet_defaults_to_inference_and_float64_is_float64_or_one_sentence():
    model = models.ResNet(depth=18, width_multiplier=0.0625, small_image_stem=True, num_classes=3)
    x = jnp.ones((2, 8, 8, 1))
    variables = model.init(jax.random.key(0), x)
    np.testing.assert_array_equal(model.apply(variables, x), model.apply(variables, x, train=False))
    wide = models.ResNet(depth=18, width_multiplier=0.0625, small_image_stem=True, dtype=jnp.float64)
    with pytest.raises(ValueError, match=r"ResNet: dtype=float64 needs 64-bit JAX; call jax.config.update"):
        wide.init(jax.random.key(0), x)
    with jax.enable_x64(True):
        variables = wide.init(jax.random.key(0), jnp.ones((2, 8, 8, 1), jnp.float64))
        h = wide.apply(variables, jnp.ones((2, 8, 8, 1), jnp.float64))
        assert h.dtype == jnp.float64
        assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float64)}
        head = models.ProjectionHead(num_layers=2, output_dim=4, dtype=jnp.float64)
        z, _ = head.apply(head.init(jax.random.key(1), h), h)
        assert z.dtype == jnp.float64
