"""``python -m gs_jax EXPERIMENT[:VARIANT] [flags]``: the ``gs-jax`` command (:mod:`gs_jax.commands`)."""

import sys

from gs_jax.commands import main

if __name__ == "__main__":
    sys.exit(main())
