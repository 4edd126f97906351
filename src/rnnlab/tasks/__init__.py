"""LightningModules: loss, metrics and optimisation around a network."""
