"""explicit_gradient_conv: same value and gradients as jax.lax.conv_general_dilated."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from rl_repr.models import ResNet
from rl_repr.models.explicit_gradient_conv import explicit_gradient_conv

DN = ("NHWC", "HWIO", "NHWC")


def _value_and_grads(conv, x, w, strides, padding, cotangent_key):
    @jax.jit  # one compilation instead of one per eager op
    def run(x, w):
        y, pullback = jax.vjp(lambda x, w: conv(x, w, strides, padding, dimension_numbers=DN), x, w)
        g = jax.random.normal(cotangent_key, y.shape, y.dtype)
        return (y, *pullback(g))
    return run(x, w)


@pytest.mark.parametrize("size,kernel,strides,padding", [
    ((8, 8), (3, 3), (1, 1), "SAME"),
    ((8, 8), (3, 3), (2, 2), "SAME"),
    ((9, 7), (3, 3), (2, 2), "VALID"),            # trailing rows no output reads
    ((8, 8), (1, 1), (2, 2), "VALID"),            # ResNet's strided 1x1 projection
    ((11, 10), (7, 7), (2, 2), ((3, 3), (3, 3))), # ResNet-50's stem
    ((10, 9), (3, 2), (3, 1), ((2, 0), (0, 1))),  # asymmetric everything
    ((5, 5), (3, 3), (1, 2), ((3, 4), (1, 1))),   # padding wider than the kernel
])
def test_value_and_gradients_match_lax(size, kernel, strides, padding):
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (3, *size, 4))
    w = jax.random.normal(kw, (*kernel, 4, 5))
    expected = _value_and_grads(lax.conv_general_dilated, x, w, strides, padding, kg)
    got = _value_and_grads(explicit_gradient_conv, x, w, strides, padding, kg)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-5, atol=1e-4)


def test_bfloat16_compute_keeps_dtypes():
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3), jnp.bfloat16)
    w = jax.random.normal(jax.random.key(2), (3, 3, 3, 4), jnp.bfloat16)
    y, dx, dw = _value_and_grads(explicit_gradient_conv, x, w, (2, 2), "SAME", jax.random.key(3))
    ey, edx, edw = _value_and_grads(lax.conv_general_dilated, x, w, (2, 2), "SAME", jax.random.key(3))
    assert (y.dtype, dx.dtype, dw.dtype) == (jnp.bfloat16,) * 3
    for e, g in ((ey, y), (edx, dx), (edw, dw)):
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(e, np.float32), rtol=0.05, atol=0.1)


def test_unsupported_layouts_fall_back_to_lax():
    x = jax.random.normal(jax.random.key(4), (2, 3, 8, 8))   # NCHW
    w = jax.random.normal(jax.random.key(5), (4, 3, 3, 3))   # OIHW
    args = (x, w, (1, 1), "SAME")
    np.testing.assert_array_equal(explicit_gradient_conv(*args, dimension_numbers=("NCHW", "OIHW", "NCHW")),
                                  lax.conv_general_dilated(*args, dimension_numbers=("NCHW", "OIHW", "NCHW")))


def test_resnet_with_explicit_gradients_matches_default():
    """Same parameters, same loss, same gradient tree as the default ResNet."""
    x = jax.random.normal(jax.random.key(6), (4, 8, 8, 1))
    make = functools.partial(ResNet, depth=18, width_multiplier=0.125, small_image_stem=True, norm="group",
                             num_groups=2)
    variables = jax.jit(functools.partial(make().init, train=True))(jax.random.key(7), x)

    def loss(params, model):
        return jnp.sum(model.apply({"params": params}, x, train=True) ** 2)

    explicit = make(explicit_conv_gradients=True)
    assert "custom_vjp_call" in str(jax.make_jaxpr(loss, static_argnums=1)(variables["params"], explicit))
    grad = jax.jit(jax.grad(loss), static_argnums=1)
    expected = grad(variables["params"], make())
    got = grad(variables["params"], explicit)
    jax.tree.map(lambda e, g: np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5), expected, got)
