"""rnnlab's Optuna sweeper for Hydra (`override hydra/sweeper: rnnlab_optuna`), found by Hydra's plugin
discovery in the `hydra_plugins` namespace. The search itself is in `rnnlab.sweeps`."""
