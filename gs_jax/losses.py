"""Losses and penalties as pure functions of logits and labels ({0,1} labels, logits of shape (n,)).

CE, Spectral Decoupling (Eq. 17: λ/2‖ŷ‖², and the per-class variant λ_c/2‖ŷ−γ_c‖²), IRM penalty, V-REx.
"""

from __future__ import annotations
