"""gs-jax: Gradient Starvation (Pezeshki et al., NeurIPS 2021) made executable in JAX.

Public API re-exported here; modules that import neural-tangents (``gs_jax.ntk``) or TensorFlow are not imported
at package import, so code paths that never touch the NTK do not pay for it.
"""

from gs_jax import config, precision, runs
from gs_jax.errors import GsJaxError

__version__ = "0.1.0"

__all__ = ["GsJaxError", "config", "precision", "runs", "__version__"]
