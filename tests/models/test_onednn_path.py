"""On a CPU, `RecurrentNet`'s LSTM trains through oneDNN's fused RNN primitive, weight dropout included.

oneDNN reads ONEDNN_VERBOSE once, when it starts, and prints to the process's own stdout: a child
process is the point here. Each case runs one training pass (forward, backward) and one evaluation
pass, and every recurrent layer call must show up as oneDNN's `rnn` primitive.
"""

from __future__ import annotations

import sys

import pytest
import torch

from tests.project import ROOT, child_environment, run_command

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")

CASES = [(layout, p) for layout in ("flat", "stack") for p in (0.0, 0.5)]

CHILD = """
import torch
from rnnlab.models.recurrent import RecurrentNet
for layout, p in CASES:
    kwargs = dict(embedding_dim=8, num_layers=2, weight_dropout=p)
    if layout == "stack":
        kwargs.update(locked_dropout=True, dropout=0.3)  # a LayerStack of one-layer nn.LSTMs
    network = RecurrentNet(11, 11, "lstm", 16, **kwargs)
    assert (type(network.rnn).__name__ == "LayerStack") == (layout == "stack")
    tokens = torch.randint(11, (4, 9))
    outputs, _ = network(tokens)
    outputs.sum().backward()
    assert all(p.grad is not None for p in network.rnn.parameters())
    with torch.no_grad():
        network.eval()(tokens)
    print("case", layout, p, flush=True)  # oneDNN's lines for this case are above this one
"""


def rnn_runs(lines: list[str]) -> dict[str, int]:
    """oneDNN's `rnn` primitive executions per propagation kind (`exec,cpu,rnn,<impl>,<kind>,...`)."""
    runs: dict[str, int] = {}
    for line in lines:
        fields = line.split(",")
        if fields[:4] == ["onednn_verbose", "v1", "primitive", "exec"] and fields[5] == "rnn":
            runs[fields[7]] = runs.get(fields[7], 0) + 1
    return runs


def test_every_lstm_layer_runs_onednn_forward_and_backward_with_and_without_weight_dropout():
    command = [sys.executable, "-c", f"CASES = {CASES!r}" + CHILD]
    result = run_command(command, cwd=ROOT, env=child_environment(ONEDNN_VERBOSE="1"), timeout=180)
    assert result.returncode == 0, result.why()
    seen, lines = [], []
    for line in result.stdout.splitlines():
        if line.startswith("case "):
            seen.append((line, rnn_runs(lines)))
            lines = []
        else:
            lines.append(line)
    assert [case for case, _ in seen] == [f"case {layout} {p}" for layout, p in CASES]
    for case, runs in seen:
        # two layers: each runs once forward with gradients, once backward, once in evaluation
        assert runs == {"forward_training": 2, "backward": 2, "forward_inference": 2}, case
    assert "alg:vanilla_lstm" in result.stdout
