import copy

import pytest
import torch
from torch import nn

from rnnlab.errors import UserError
from rnnlab.models.recurrent import RecurrentNet
from rnnlab.models.regularisation import LayerStack, LockedDropout, drop_embedding_rows

V = 11
EVERYTHING = dict(
    embedding_dim=6,
    tie_weights=True,
    embedding_dropout=0.2,
    input_dropout=0.3,
    dropout=0.4,
    locked_dropout=True,
    weight_dropout=0.5,
    activation_reg=2.0,
    temporal_activation_reg=1.0,
)


def test_locked_dropout_keeps_one_mask_over_all_time_steps():
    torch.manual_seed(0)
    dropout = LockedDropout(0.5)
    out = dropout(torch.ones(4, 30, 8))
    assert torch.equal(out, out[:, :1].expand_as(out))  # every step has the first step's mask
    assert set(out.unique().tolist()) == {0.0, 2.0}  # kept units scaled by 1 / (1 - p)
    assert 0 < (out[:, 0] == 0).float().mean() < 1
    assert torch.equal(dropout.eval()(out), out)


def test_embedding_dropout_drops_whole_token_rows():
    torch.manual_seed(0)
    weight = torch.randn(50, 4)
    dropped = drop_embedding_rows(weight, 0.5)
    zero_rows = (dropped == 0).all(dim=1)
    assert 0 < zero_rows.sum() < 50
    torch.testing.assert_close(dropped[~zero_rows], weight[~zero_rows] * 2)


def test_a_dropped_token_reads_as_zeros_everywhere_in_the_batch():
    torch.manual_seed(3)
    network = RecurrentNet(V, V, "gru", 5, embedding_dim=4, embedding_dropout=0.5)
    seen = {}
    network.rnn.register_forward_hook(lambda module, args, out: seen.update(x=args[0]))
    tokens = torch.randint(V, (6, 20))
    network(tokens)
    zero = (seen["x"] == 0).all(dim=-1)
    for token in tokens.unique():
        at = zero[tokens == token]
        assert at.all() or not at.any()  # a token's row is dropped for the whole batch or not at all
    assert zero.any() and not zero.all()


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_weight_dropout_masks_only_the_recurrent_matrices_once_per_pass(cell):
    torch.manual_seed(0)
    network = RecurrentNet(V, V, cell, 7, num_layers=2, weight_dropout=0.5)
    reference = copy.deepcopy(network.rnn)
    before = {name: weight.detach().clone() for name, weight in network.named_parameters()}
    tokens = torch.randint(V, (3, 9))
    torch.manual_seed(1)
    outputs, _ = network(tokens)
    # The same random stream gives the same masks: a plain module whose recurrent matrices carry them
    # (the same mask at every step) computes the same outputs.
    torch.manual_seed(1)
    with torch.no_grad():
        for name, weight in reference.named_parameters():
            if name.startswith("weight_hh"):
                weight.copy_(nn.functional.dropout(weight, 0.5, training=True))
    expected = network.head(reference(nn.functional.one_hot(tokens, V).float())[0])
    torch.testing.assert_close(outputs, expected)
    # The parameters themselves are untouched by the pass, still receive gradients, and eval mode uses
    # them whole.
    for name, weight in network.named_parameters():
        assert torch.equal(weight, before[name]), f"the forward pass changed {name}"
    outputs.sum().backward()
    assert network.rnn.weight_hh_l1.grad.abs().sum() > 0
    plain = copy.deepcopy(network).eval()
    plain.weight_dropout = 0.0
    torch.testing.assert_close(network.eval()(tokens)[0], plain(tokens)[0])


def test_tied_weights_are_one_tensor_with_a_projection_when_sizes_differ():
    network = RecurrentNet(V, V, "lstm", 9, embedding_dim=4, tie_weights=True)
    assert network.head.weight is network.embedding.weight
    assert network.projection.in_features == 9 and network.projection.out_features == 4
    untied = RecurrentNet(V, V, "lstm", 9, embedding_dim=4)
    # the head's own [V, 9] matrix is gone; the projection's 9 -> 4 (and its bias) is new
    assert sum(p.numel() for p in network.parameters()) == (
        sum(p.numel() for p in untied.parameters()) - V * 9 + 9 * 4 + 4
    )
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    network(torch.randint(V, (2, 5)))[0].sum().backward()
    optimizer.step()
    assert network.head.weight is network.embedding.weight
    same_size = RecurrentNet(V, V, "gru", 4, embedding_dim=4, tie_weights=True)
    assert isinstance(same_size.projection, nn.Identity)
    reloaded = RecurrentNet(V, V, "lstm", 9, embedding_dim=4, tie_weights=True)
    reloaded.load_state_dict(network.state_dict())
    assert reloaded.head.weight is reloaded.embedding.weight
    assert torch.equal(reloaded.embedding.weight, network.embedding.weight)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_layer_stack_equals_the_multi_layer_module_with_the_same_weights(cell):
    torch.manual_seed(0)
    module = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](5, 6, 3, batch_first=True)
    stack = LayerStack(type(module), 5, 6, 3, dropout=0.5, bidirectional=False).eval()
    with torch.no_grad():
        for i, layer in enumerate(stack.layers):
            for name, weight in layer.named_parameters():
                weight.copy_(getattr(module, name.replace("_l0", f"_l{i}")))
    x = torch.randn(2, 7, 5)
    expected, expected_state = module(x)
    outputs, state = stack(x)
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(state, expected_state)
    # and it carries a state in the module's layout
    first, middle = stack(x[:, :3])
    torch.testing.assert_close(stack(x[:, 3:], middle)[0], expected[:, 3:])


def test_eval_mode_turns_every_regulariser_off():
    torch.manual_seed(0)
    network = RecurrentNet(V, V, "lstm", 8, num_layers=2, **EVERYTHING)
    without = {
        **EVERYTHING,
        "embedding_dropout": 0.0,
        "input_dropout": 0.0,
        "dropout": 0.0,
        "weight_dropout": 0.0,
        "activation_reg": 0.0,
        "temporal_activation_reg": 0.0,
    }
    plain = RecurrentNet(V, V, "lstm", 8, num_layers=2, **without)
    plain.load_state_dict(network.state_dict())
    tokens = torch.randint(V, (3, 10))
    network.train()
    assert not torch.equal(network(tokens)[0], network(tokens)[0])  # training: random masks
    assert network.forward_with_penalty(tokens)[2] is not None
    network.eval()
    torch.testing.assert_close(network(tokens)[0], plain.eval()(tokens)[0])
    assert network.forward_with_penalty(tokens)[2] is None


def test_the_activation_penalty_is_ar_plus_tar_of_the_last_layer():
    torch.manual_seed(0)
    network = RecurrentNet(V, V, "gru", 8, activation_reg=2.0, temporal_activation_reg=3.0)
    seen = {}
    network.rnn.register_forward_hook(lambda module, args, out: seen.update(h=out[0]))
    _, _, penalty = network.forward_with_penalty(torch.randint(V, (4, 6)))
    h = seen["h"]
    expected = 2.0 * h.pow(2).mean() + 3.0 * (h[:, 1:] - h[:, :-1]).pow(2).mean()
    torch.testing.assert_close(penalty, expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(tie_weights=True, embedding_dim=None), "needs a learned embedding"),  # auto learns one
        (dict(embedding_dropout=0.1), "needs a learned embedding"),
        (dict(embedding_dim=4, tie_weights=True, head=False, hidden_size=V), "needs model.head=true"),
        (dict(weight_dropout=1.0), "model.weight_dropout=1.0 must be in [0, 1)"),
        (dict(input_dropout=-0.1), "model.input_dropout=-0.1 must be in [0, 1)"),
        (dict(temporal_activation_reg=-1), "model.temporal_activation_reg=-1 must be 0 (off) or more"),
    ],
)
def test_bad_regulariser_settings_are_refused_in_one_line(kwargs, message):
    with pytest.raises(UserError) as error:
        RecurrentNet(V, V, **{"hidden_size": 8, **kwargs})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_hidden_dropout_is_between_layers_and_dropout_on_the_outputs():
    """awd's dropouth (between layers) and dropout (on the outputs) are separate settings."""
    torch.manual_seed(0)
    tokens = torch.randint(V, (4, 7))
    only_between = RecurrentNet(V, V, "lstm", 8, num_layers=2, dropout=0.0, hidden_dropout=0.9)
    none = RecurrentNet(V, V, "lstm", 8, num_layers=2, dropout=0.0, hidden_dropout=0.0)
    none.load_state_dict(only_between.state_dict())
    assert only_between.rnn.dropout == 0.9 and none.rnn.dropout == 0.0  # torch's between-layer dropout
    assert not torch.equal(only_between(tokens)[0], none(tokens)[0])
    only_output = RecurrentNet(
        V, V, "lstm", 8, num_layers=2, dropout=0.5, hidden_dropout=0.0, locked_dropout=True
    )
    assert isinstance(only_output.rnn, LayerStack) and isinstance(only_output.rnn.between, torch.nn.Identity)
    inherits = RecurrentNet(V, V, "gru", 8, num_layers=2, dropout=0.3)
    assert inherits.rnn.dropout == 0.3  # hidden_dropout=null: dropout between layers too, as before


@pytest.mark.parametrize("num_layers", [1, 3])
def test_awd_tying_sizes_the_last_layer_to_the_embedding_without_a_projection(num_layers):
    torch.manual_seed(0)
    network = RecurrentNet(V, V, "lstm", 16, num_layers=num_layers, embedding_dim=6, tie_weights="last_layer")
    assert isinstance(network.projection, torch.nn.Identity)
    assert network.head.weight is network.embedding.weight
    tokens = torch.randint(V, (2, 5))
    outputs, state = network(tokens)
    assert outputs.shape == (2, 5, V)
    assert state[0].shape == (num_layers, 2, 16 if num_layers > 1 else 6)  # padded to the widest layer
    if num_layers > 1:
        assert network.rnn.sizes == [16, 16, 6]
        # the carried state reads back exactly: two halves with the state passed on equal the whole
        first, carried = network(tokens[:, :2])
        second, _ = network(tokens[:, 2:], carried)
        torch.testing.assert_close(torch.cat([first, second], dim=1), outputs)
