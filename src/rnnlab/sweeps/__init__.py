"""Sweeps: the end-of-sweep report (a Hydra callback) and the comparison of many runs."""
