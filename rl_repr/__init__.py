"""rl_repr: representation learning in JAX/Flax.

Import the parts you need; the top-level package stays light so that
``import rl_repr`` never pulls TensorFlow or compiles anything.

    from rl_repr import norms, models, losses
"""

__version__ = "0.3.0"
