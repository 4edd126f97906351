"""A word vocabulary gets a learned embedding by default; characters stay one-hot; one-hot is there
when asked for, with a warning when it is wide."""

from __future__ import annotations

import logging

import pytest
import torch

from rnnlab.errors import UserError
from rnnlab.models.recurrent import RecurrentNet


def test_a_wide_vocabulary_is_embedded_and_a_narrow_one_stays_one_hot():
    words = RecurrentNet(input_size=1000, output_size=1000, hidden_size=32)
    assert words.embedding is not None and words.embedding.embedding_dim == 32
    assert words(torch.randint(0, 1000, (2, 5)))[0].shape == (2, 5, 1000)
    chars = RecurrentNet(input_size=28, output_size=28, hidden_size=32)
    assert chars.embedding is None and chars.rnn.input_size == 28


def test_one_hot_when_asked_warns_in_one_line_when_wide(caplog):
    with caplog.at_level(logging.WARNING):
        network = RecurrentNet(input_size=13776, output_size=10, hidden_size=8, embedding_dim=None)
    assert network.embedding is None and network.rnn.input_size == 13776
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "one-hot input 13776 wide" in warning and "\n" not in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        RecurrentNet(input_size=28, output_size=28, hidden_size=8, embedding_dim=None)
    assert not caplog.records


def test_an_unknown_word_for_the_width_is_refused():
    with pytest.raises(UserError, match="give a width, auto, or null"):
        RecurrentNet(input_size=28, output_size=28, embedding_dim="wide")
