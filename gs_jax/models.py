"""Flax linen models (float32 by default).

Sections: Colored MNIST MLP (Section 4.3 of the paper) and two-moons networks (Section 2, Appendix B).
Initialisers follow the authors' PyTorch code where the experiment depends on it (see each class).
"""

from __future__ import annotations
