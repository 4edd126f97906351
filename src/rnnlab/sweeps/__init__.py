"""Hydra callbacks of a `-m` sweep: jobs named by what varies, and the end-of-sweep report."""
