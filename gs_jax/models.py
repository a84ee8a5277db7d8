"""Flax linen models (float32 by default).

Sections: Colored MNIST MLP (Section 4.3 of the paper) and two-moons networks (Section 2, Appendix B).
Initialisers follow the authors' PyTorch code where the experiment depends on it (see each class).
"""

from __future__ import annotations

# ----------------------------------------------------------------------------------------------------------------
# Colored MNIST (Section 4.3, Table 2; SPEC §2.2)
# ----------------------------------------------------------------------------------------------------------------
import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402


class CmnistMLP(nn.Module):
    """392 → hidden → hidden → 1 ReLU MLP with Xavier-uniform weights and zero biases (the authors' init).

    ``grayscale=True`` is the oracle: the (n, 392) input is viewed as (n, 2, 196) and the two colour channels are
    summed, recovering the grey digit whatever its colour; the first layer is then 196 → hidden.
    Returns logits of shape (n,).
    """

    hidden: int = 300
    grayscale: bool = False

    @nn.compact
    def __call__(self, x_nd: jnp.ndarray) -> jnp.ndarray:
        if self.grayscale:
            x_nd = x_nd.reshape(x_nd.shape[0], 2, -1).sum(axis=1)
        dense = dict(kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros)
        h = nn.relu(nn.Dense(self.hidden, **dense)(x_nd))
        h = nn.relu(nn.Dense(self.hidden, **dense)(h))
        return nn.Dense(1, **dense)(h)[:, 0]
