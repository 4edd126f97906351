"""The Optuna search behind `hparams_search=...`: the study and its storage, the search space, the
checks before a search starts, seeded proposals, and the trial reporting a run does."""
