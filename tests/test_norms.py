"""rl_repr.norms on one device: each norm against numpy written from the slide
formulas and against the matching flax.linen layer; gradients; folding."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rl_repr import norms

EPS = 1e-5


# --------------------------------------------------------------------------
# Independent numpy references (float64), written from the slides:
#   mu = mean, sigma^2 = biased variance, y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta
# --------------------------------------------------------------------------
def np_normalize(x, axes, gamma, beta, eps=EPS):
    x = np.asarray(x, np.float64)
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return np.asarray(gamma) * (x - mu) / np.sqrt(var + eps) + np.asarray(beta)


def np_batch_norm_train(x, gamma, beta, run_mean, run_var, momentum=0.9, eps=EPS):
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - 1))
    mu, var = x.mean(axis=axes), x.var(axis=axes)  # np.var is the biased variance
    y = gamma * (x - mu) / np.sqrt(var + eps) + beta
    return y, momentum * run_mean + (1 - momentum) * mu, momentum * run_var + (1 - momentum) * var


def np_batch_norm_eval(x, gamma, beta, run_mean, run_var, eps=EPS):
    return gamma * (np.asarray(x, np.float64) - run_mean) / np.sqrt(run_var + eps) + beta


def np_group_norm(x, gamma, beta, groups, eps=EPS):
    x = np.asarray(x, np.float64)
    c = x.shape[-1]
    g = x.reshape(*x.shape[:-1], groups, c // groups)
    axes = tuple(range(1, g.ndim - 2)) + (g.ndim - 1,)
    mu = g.mean(axis=axes, keepdims=True)
    var = g.var(axis=axes, keepdims=True)
    return ((g - mu) / np.sqrt(var + eps)).reshape(x.shape) * gamma + beta


def random_inputs(shape, seed=0, offset=3.0):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = (rng.normal(size=shape) * rng.uniform(0.5, 2.0, size=c) + offset).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, size=c).astype(np.float32)
    beta = rng.normal(size=c).astype(np.float32)
    return x, gamma, beta


SHAPES = [(16, 5), (4, 6, 5, 8)]


# --------------------------------------------------------------------------
# Batch norm.
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_training_matches_numpy(shape):
    x, gamma, beta = random_inputs(shape)
    c = shape[-1]
    rm, rv = np.linspace(-1, 1, c).astype(np.float32), np.linspace(0.5, 2, c).astype(np.float32)
    y, (new_mean, new_var) = norms.batch_norm(x, gamma, beta, rm, rv, training=True)
    ref_y, ref_mean, ref_var = np_batch_norm_train(x, gamma, beta, rm, rv)
    chex.assert_trees_all_close((y, new_mean, new_var), (ref_y, ref_mean, ref_var),
                                atol=2e-5, rtol=2e-5)
    assert y.shape == shape and new_mean.shape == new_var.shape == (c,)
    # Normalized output per feature: mean beta, std gamma (slides' goal: zero mean, unit var).
    axes = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(np.mean(y, axis=axes), beta, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_eval_uses_running_stats_unchanged(shape):
    x, gamma, beta = random_inputs(shape, seed=1)
    c = shape[-1]
    rm, rv = np.linspace(2, 4, c).astype(np.float32), np.linspace(0.5, 3, c).astype(np.float32)
    y, (out_mean, out_var) = norms.batch_norm(x, gamma, beta, rm, rv, training=False)
    chex.assert_trees_all_close(y, np_batch_norm_eval(x, gamma, beta, rm, rv), atol=2e-5, rtol=2e-5)
    np.testing.assert_array_equal(out_mean, rm)
    np.testing.assert_array_equal(out_var, rv)


def test_batch_norm_running_stats_over_steps_match_numpy_and_flax():
    shape, steps, momentum = (8, 3, 3, 4), 4, 0.9
    flax_bn = nn.BatchNorm(momentum=momentum, epsilon=EPS)
    ours_bn = norms.BatchNorm(momentum=momentum)
    x0, gamma, beta = random_inputs(shape, seed=10)
    flax_vars = flax_bn.init(jax.random.key(0), x0, use_running_average=False)
    ours_vars = ours_bn.init(jax.random.key(0), x0, use_running_average=False)
    # Same variable tree as flax (names, shapes, collections) and the same init.
    chex.assert_trees_all_equal(ours_vars, flax_vars)
    params = {"scale": jnp.asarray(gamma), "bias": jnp.asarray(beta)}
    flax_vars = {**flax_vars, "params": params}
    ours_vars = {**ours_vars, "params": params}
    ref_mean, ref_var = np.zeros(4), np.ones(4)
    for step in range(steps):
        x, _, _ = random_inputs(shape, seed=20 + step, offset=step)
        y, upd = ours_bn.apply(ours_vars, x, use_running_average=False, mutable=["batch_stats"])
        fy, fupd = flax_bn.apply(flax_vars, x, use_running_average=False, mutable=["batch_stats"])
        ours_vars = {**ours_vars, **upd}
        flax_vars = {**flax_vars, **fupd}
        ref_y, ref_mean, ref_var = np_batch_norm_train(x, gamma, beta, ref_mean, ref_var, momentum)
        chex.assert_trees_all_close(y, fy, ref_y, atol=5e-5, rtol=5e-5)
    stats = ours_vars["batch_stats"]
    chex.assert_trees_all_close(stats, flax_vars["batch_stats"], atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close((stats["mean"], stats["var"]), (ref_mean, ref_var),
                                atol=1e-5, rtol=1e-5)
    # Evaluation with the accumulated statistics.
    x, _, _ = random_inputs(shape, seed=99)
    y_eval = ours_bn.apply(ours_vars, x, use_running_average=True)
    fy_eval = flax_bn.apply(flax_vars, x, use_running_average=True)
    chex.assert_trees_all_close(y_eval, fy_eval,
                                np_batch_norm_eval(x, gamma, beta, ref_mean, ref_var),
                                atol=5e-5, rtol=5e-5)


def test_batch_norm_module_init_leaves_running_stats_and_eval_needs_no_mutable():
    bn = norms.BatchNorm(momentum=0.9)
    x, _, _ = random_inputs((6, 4))
    variables = bn.init(jax.random.key(0), x, use_running_average=False)
    np.testing.assert_array_equal(variables["batch_stats"]["mean"], np.zeros(4))
    np.testing.assert_array_equal(variables["batch_stats"]["var"], np.ones(4))
    # Eval mode: no mutable collection needed, nothing changes.
    y, upd = bn.apply(variables, x, use_running_average=True, mutable=["batch_stats"])
    chex.assert_trees_all_equal(upd["batch_stats"], variables["batch_stats"])
    np.testing.assert_allclose(y, x / np.sqrt(1 + EPS), rtol=1e-6)


def test_batch_norm_bf16_keeps_float32_statistics():
    # Large offset: a bf16 mean (8 bits of mantissa) would be off by ~0.1.
    x, gamma, beta = random_inputs((64, 8), seed=3, offset=50.0)
    x_bf16 = jnp.asarray(x, jnp.bfloat16)
    x_exact = np.asarray(x_bf16.astype(jnp.float32), np.float64)
    rm, rv = np.zeros(8, np.float32), np.ones(8, np.float32)
    y, (new_mean, new_var) = norms.batch_norm(x_bf16, gamma, beta, rm, rv, training=True)
    assert y.dtype == jnp.bfloat16 and new_mean.dtype == new_var.dtype == jnp.float32
    ref_y, ref_mean, ref_var = np_batch_norm_train(x_exact, gamma, beta, rm, rv)
    chex.assert_trees_all_close((new_mean, new_var), (ref_mean, ref_var), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(y, np.float32), ref_y, atol=3e-2, rtol=1e-2)
    y32, _ = norms.batch_norm(x_bf16, gamma, beta, rm, rv, training=True, dtype=jnp.float32)
    assert y32.dtype == jnp.float32
    np.testing.assert_allclose(y32, ref_y, atol=1e-4, rtol=1e-4)


def test_batch_norm_without_scale_and_bias():
    x, _, _ = random_inputs((10, 3), seed=4)
    y, _ = norms.batch_norm(x, None, None, np.zeros(3), np.ones(3), training=True)
    np.testing.assert_allclose(y, np_normalize(x, (0,), 1.0, 0.0), atol=2e-5)


# --------------------------------------------------------------------------
# Per-example norms: numpy and flax.linen.
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_layer_norm_matches_numpy_and_flax(shape):
    x, gamma, beta = random_inputs(shape, seed=5)
    y = norms.layer_norm(x, gamma, beta)
    axes = tuple(range(1, len(shape)))
    ref = np_normalize(x, axes, gamma, beta)
    flax_ln = nn.LayerNorm(epsilon=EPS, reduction_axes=axes, feature_axes=-1)
    fy = flax_ln.apply({"params": {"scale": gamma, "bias": beta}}, x)
    chex.assert_trees_all_close(y, fy, ref, atol=3e-5, rtol=3e-5)
    ours = norms.LayerNorm()
    chex.assert_trees_all_equal_shapes(ours.init(jax.random.key(0), x),
                                       flax_ln.init(jax.random.key(0), x))
    chex.assert_trees_all_close(ours.apply({"params": {"scale": gamma, "bias": beta}}, x), ref,
                                atol=3e-5, rtol=3e-5)


def test_instance_norm_matches_numpy_and_flax():
    x, gamma, beta = random_inputs((3, 5, 4, 6), seed=6)
    y = norms.instance_norm(x, gamma, beta)
    ref = np_normalize(x, (1, 2), gamma, beta)
    flax_in = nn.InstanceNorm(epsilon=EPS)
    fy = flax_in.apply({"params": {"scale": gamma, "bias": beta}}, x)
    chex.assert_trees_all_close(y, fy, ref, atol=3e-5, rtol=3e-5)
    ours = norms.InstanceNorm()
    chex.assert_trees_all_close(ours.apply({"params": {"scale": gamma, "bias": beta}}, x), ref,
                                atol=3e-5, rtol=3e-5)


@pytest.mark.parametrize("shape,groups", [((3, 5, 4, 8), 4), ((3, 5, 4, 8), 1), ((6, 12), 3)])
def test_group_norm_matches_numpy_and_flax(shape, groups):
    x, gamma, beta = random_inputs(shape, seed=7)
    y = norms.group_norm(x, gamma, beta, num_groups=groups)
    ref = np_group_norm(x, gamma, beta, groups)
    flax_gn = nn.GroupNorm(num_groups=groups, epsilon=EPS)
    fy = flax_gn.apply({"params": {"scale": gamma, "bias": beta}}, x)
    chex.assert_trees_all_close(y, fy, ref, atol=3e-5, rtol=3e-5)
    by_count = norms.GroupNorm(num_groups=groups)
    by_size = norms.GroupNorm(num_groups=None, group_size=shape[-1] // groups)
    variables = {"params": {"scale": gamma, "bias": beta}}
    chex.assert_trees_all_close(by_count.apply(variables, x), by_size.apply(variables, x), ref,
                                atol=3e-5, rtol=3e-5)


def test_group_norm_extremes_are_layer_and_instance_norm():
    x, gamma, beta = random_inputs((2, 4, 3, 6), seed=8)
    chex.assert_trees_all_close(norms.group_norm(x, gamma, beta, num_groups=1),
                                norms.layer_norm(x, gamma, beta), atol=1e-5)
    chex.assert_trees_all_close(norms.group_norm(x, gamma, beta, num_groups=6),
                                norms.instance_norm(x, gamma, beta), atol=1e-5)


def test_group_norm_module_clips_groups_to_narrow_layers():
    gn = norms.GroupNorm(num_groups=32, clip_num_groups=True)
    assert gn.groups_for(8) == 8 and gn.groups_for(64) == 32 and gn.groups_for(24) == 24
    assert gn.groups_for(40) == 20
    x, _, _ = random_inputs((2, 3, 3, 8), seed=9)
    y = gn.apply(gn.init(jax.random.key(0), x), x)
    np.testing.assert_allclose(y, np_normalize(x, (1, 2), 1.0, 0.0), atol=3e-5)
    with pytest.raises(ValueError, match="does not divide"):
        strict = norms.GroupNorm(num_groups=32)
        strict.init(jax.random.key(0), x)


@pytest.mark.parametrize("fn", ["layer", "instance", "group"])
def test_per_example_norms_keep_bf16_and_float32_params(fn):
    module = {"layer": norms.LayerNorm(dtype=jnp.bfloat16),
              "instance": norms.InstanceNorm(dtype=jnp.bfloat16),
              "group": norms.GroupNorm(num_groups=2, dtype=jnp.bfloat16)}[fn]
    x = jnp.asarray(random_inputs((2, 3, 3, 4), seed=11, offset=40.0)[0], jnp.float32)
    variables = module.init(jax.random.key(0), x.astype(jnp.bfloat16))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
    y = module.apply(variables, x.astype(jnp.bfloat16))
    y_ref = module.apply(variables, x.astype(jnp.bfloat16).astype(jnp.float32))
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), y_ref, atol=3e-2, rtol=1e-2)


# --------------------------------------------------------------------------
# Errors name the bad input.
# --------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    x = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="scale has shape"):
        norms.batch_norm(x, jnp.ones(4), None, jnp.zeros(3), jnp.ones(3), training=True)
    with pytest.raises(ValueError, match="momentum"):
        norms.batch_norm(x, None, None, jnp.zeros(3), jnp.ones(3), training=True, momentum=1.5)
    with pytest.raises(ValueError, match="rank >= 3"):
        norms.instance_norm(x, None, None)
    with pytest.raises(ValueError, match="rank >= 2"):
        norms.layer_norm(jnp.ones(3), None, None)
    with pytest.raises(ValueError, match="does not divide"):
        norms.group_norm(jnp.ones((2, 6)), None, None, num_groups=4)
    with pytest.raises(ValueError, match="output channels"):
        norms.fold_batch_norm(jnp.ones((3, 4)), None, jnp.ones(3), None, jnp.zeros(4), jnp.ones(4))


# --------------------------------------------------------------------------
# Gradients against finite differences (float64 so the check is tight).
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["batch_train", "batch_eval", "layer", "instance", "group"])
def test_gradients_match_finite_differences(name):
    with jax.enable_x64(True):
        x, gamma, beta = (jnp.asarray(a, jnp.float64) for a in random_inputs((4, 3, 2, 4), seed=12))
        rm, rv = jnp.linspace(-1.0, 1.0, 4), jnp.linspace(0.5, 2.0, 4)
        fns = {
            "batch_train": lambda x, g, b: norms.batch_norm(x, g, b, rm, rv, training=True),
            "batch_eval": lambda x, g, b: norms.batch_norm(x, g, b, rm, rv, training=False)[0],
            "layer": norms.layer_norm,
            "instance": norms.instance_norm,
            "group": lambda x, g, b: norms.group_norm(x, g, b, num_groups=2),
        }
        check_grads(fns[name], (x, gamma, beta), order=1, modes=("fwd", "rev"),
                    atol=1e-6, rtol=1e-6, eps=1e-5)


# --------------------------------------------------------------------------
# Folding batch norm into the preceding layer.
# --------------------------------------------------------------------------
def _bn_state(rng, c):
    return (rng.uniform(0.5, 1.5, c).astype(np.float32), rng.normal(size=c).astype(np.float32),
            rng.normal(size=c).astype(np.float32), rng.uniform(0.2, 3.0, c).astype(np.float32))


@pytest.mark.parametrize("use_bias", [False, True])
def test_fold_batch_norm_conv_equals_conv_then_bn(use_bias):
    rng = np.random.default_rng(13)
    x = rng.normal(size=(2, 7, 7, 3)).astype(np.float32)
    conv = nn.Conv(5, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=use_bias)
    params = conv.init(jax.random.key(1), x)["params"]
    if use_bias:
        params = {**params, "bias": jnp.asarray(rng.normal(size=5), jnp.float32)}
    gamma, beta, mean, var = _bn_state(rng, 5)
    y_ref, _ = norms.batch_norm(conv.apply({"params": params}, x), gamma, beta, mean, var,
                                training=False)
    kernel, bias = norms.fold_batch_norm(params["kernel"], params.get("bias"), gamma, beta,
                                         mean, var)
    assert kernel.shape == params["kernel"].shape and bias.shape == (5,)
    folded = nn.Conv(5, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=True)
    y = folded.apply({"params": {"kernel": kernel, "bias": bias}}, x)
    chex.assert_trees_all_close(y, y_ref, atol=1e-5, rtol=1e-5)


def test_fold_batch_norm_dense_equals_dense_then_bn():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    kernel = rng.normal(size=(4, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    gamma, beta, mean, var = _bn_state(rng, 3)
    # Reference in numpy: dense, then the slides' test-time BN.
    ref = np_batch_norm_eval(x.astype(np.float64) @ kernel + bias, gamma, beta, mean, var)
    k2, b2 = norms.fold_batch_norm(kernel, bias, gamma, beta, mean, var)
    chex.assert_trees_all_close(x @ k2 + b2, ref, atol=1e-5, rtol=1e-5)
