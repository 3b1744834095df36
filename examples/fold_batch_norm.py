"""Folding batch norm into the convolution before it, for inference.

At inference batch norm is a fixed affine map per channel, so ``conv -> batch_norm`` is one
convolution with a rescaled kernel and a bias (``norms.fold_batch_norm``)::

    s       = gamma / sqrt(running_var + eps)
    kernel' = kernel * s                 (per output channel, the kernel's last axis)
    bias'   = s * (bias - running_mean) + beta

The script folds a trained-looking layer (random kernel, statistics and affine parameters),
checks the folded convolution against convolution then ``batch_norm(training=False)``, and does
the same for a dense layer::

    python examples/fold_batch_norm.py
"""

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr import norms


def conv(x, kernel):
    """NHWC images, HWIO kernel, stride 1, same padding."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def main():
    keys = jax.random.split(jax.random.key(0), 7)
    channels_in, channels_out = 3, 16
    images = jax.random.normal(keys[0], (4, 8, 8, channels_in))
    kernel = jax.random.normal(keys[1], (3, 3, channels_in, channels_out)) * 0.3
    gamma = 1 + 0.2 * jax.random.normal(keys[2], (channels_out,))
    beta = 0.1 * jax.random.normal(keys[3], (channels_out,))
    running_mean = jax.random.normal(keys[4], (channels_out,))
    running_var = jax.random.uniform(keys[5], (channels_out,), minval=0.5, maxval=2.0)

    # Convolution (no bias) followed by batch norm in inference mode: two operations.
    normalised, _ = norms.batch_norm(conv(images, kernel), gamma, beta, running_mean, running_var, training=False)
    # One convolution with a bias.
    folded_kernel, folded_bias = norms.fold_batch_norm(kernel, None, gamma, beta, running_mean, running_var)
    folded = conv(images, folded_kernel) + folded_bias
    conv_error = float(jnp.max(jnp.abs(folded - normalised)))
    print(f"conv -> batch norm vs folded conv: largest difference {conv_error:.1e} "
          f"(outputs of scale {float(jnp.std(normalised)):.2f})")

    # A dense layer with its own bias folds the same way.
    dense_kernel = jax.random.normal(keys[6], (5, channels_out))
    dense_bias = jnp.linspace(-1, 1, channels_out)
    x = jnp.arange(10.0).reshape(2, 5) / 10
    reference, _ = norms.batch_norm(x @ dense_kernel + dense_bias, gamma, beta, running_mean, running_var,
                                    training=False)
    kernel2, bias2 = norms.fold_batch_norm(dense_kernel, dense_bias, gamma, beta, running_mean, running_var)
    dense_error = float(jnp.max(jnp.abs(x @ kernel2 + bias2 - reference)))
    print(f"dense -> batch norm vs folded dense: largest difference {dense_error:.1e}")
    np.testing.assert_allclose(folded, normalised, atol=1e-5)
    assert dense_error < 1e-5


if __name__ == "__main__":
    main()
