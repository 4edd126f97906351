"""One quoting rule for every override rnnlab writes for Hydra, checked against Hydra's own parser."""

import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from rnnlab.overrides import hydra_quoted, key_of, shell_command, unquoted, value_of

AWKWARD = [
    "/runs/multirun/2026-01-01/12-00-00/model=gru,optimizer.lr=1",
    "it's mine",
    'say "hi"',
    "C:\\runs\\a",
    "ends in a backslash\\",
    "a backslash before a quote\\'",
    "two\\\\'",
    "'",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_a_quoted_value_is_read_by_hydra_as_exactly_the_text(text):
    override = f"resume={hydra_quoted(text)}"
    assert OverridesParser.create().parse_override(override).value() == text
    assert value_of(override) == text  # and read back by rnnlab the same way


@pytest.mark.parametrize("text", AWKWARD)
def test_a_command_line_survives_the_shell_and_hydra(text):
    command = shell_command("scripts/train.py", [f"resume={hydra_quoted(text)}"])
    python, script, word = shlex.split(command)
    assert (python, script) == ("python", "scripts/train.py")
    assert value_of(word) == text


def test_keys_and_plain_values():
    assert key_of("+callbacks.early_stopping.patience=3") == "callbacks.early_stopping.patience"
    assert key_of("~logger") == "logger"
    assert unquoted("plain") == "plain" and unquoted('"double"') == "double"
    assert shell_command("scripts/train.py", ["model=gru"]) == "python scripts/train.py model=gru"
