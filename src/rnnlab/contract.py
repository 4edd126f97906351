"""What a batch holds, so that a model and a dataset can be checked against each other before training.

Every datamodule says which kind of input its batches hold (`input_kind`) and every network class
which kinds it takes (`accepts`); `scripts/train.py` refuses a pair that does not fit.
"""

from __future__ import annotations

from enum import StrEnum


class InputKind(StrEnum):
    TOKENS = "token sequences [N, T] (integer ids)"
    SEQUENCES = "feature sequences [N, T, F]"
    FEATURES = "feature vectors [N, F]"
    IMAGES = "images [N, C, H, W]"


# The model configs (conf/model/) that take each kind; tests check this against the classes.
MODELS_FOR: dict[InputKind, tuple[str, ...]] = {
    InputKind.TOKENS: ("rnn_scratch", "rnn_cell", "rnn", "gru", "lstm"),
    InputKind.SEQUENCES: ("rnn_scratch", "rnn_cell", "rnn", "gru", "lstm"),
    InputKind.FEATURES: ("linear", "logistic", "mlp"),
    InputKind.IMAGES: ("mlp", "cnn", "inception", "resnet"),
}
