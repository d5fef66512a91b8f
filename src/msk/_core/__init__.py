"""Compiled kernels of msk. Private: import the public functions from ``msk``."""
