"""Datasets: one module per dataset. Nothing is downloaded at import or run time (see each module)."""
