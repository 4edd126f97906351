import torch
from torch import nn
from torch.nn import functional as F

from rnnlab.models.rnn_scratch import RNNScratch

V, H, B, T = 11, 16, 3, 7


def reference_like(scratch: RNNScratch) -> tuple[nn.RNN, nn.Linear]:
    """nn.RNN + nn.Linear holding the scratch model's weights."""
    rnn, head = nn.RNN(V, H, batch_first=True), nn.Linear(H, V)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(scratch.W_xh.T)
        rnn.weight_hh_l0.copy_(scratch.W_hh.T)
        rnn.bias_ih_l0.copy_(scratch.b_h)
        rnn.bias_hh_l0.zero_()
        head.weight.copy_(scratch.W_hq.T)
        head.bias.copy_(scratch.b_q)
    return rnn, head


def test_book_initialisation():
    torch.manual_seed(0)
    scratch = RNNScratch(V, V, 512)
    assert abs(scratch.W_hh.std().item() - 0.01) < 0.001
    assert not scratch.b_h.any() and not scratch.b_q.any()


def test_outputs_and_gradients_equal_nn_rnn_with_the_same_weights():
    torch.manual_seed(0)
    scratch = RNNScratch(V, V, H, init_std=0.3)  # larger weights than the book's, so the test sees real tanh
    with torch.no_grad():
        scratch.b_h.normal_()
        scratch.b_q.normal_()
    rnn, head = reference_like(scratch)
    tokens = torch.randint(V, (B, T))
    targets = torch.randint(V, (B, T))
    h0 = torch.randn(B, H) * 0.5

    logits, h = scratch(tokens, h0)
    outputs, h_ref = rnn(F.one_hot(tokens, V).float(), h0[None])
    logits_ref = head(outputs)
    torch.testing.assert_close(logits, logits_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, h_ref[0], rtol=1e-5, atol=1e-6)

    F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
    F.cross_entropy(logits_ref.flatten(0, 1), targets.flatten()).backward()
    pairs = [
        (scratch.W_xh.grad, rnn.weight_ih_l0.grad.T),
        (scratch.W_hh.grad, rnn.weight_hh_l0.grad.T),
        (scratch.b_h.grad, rnn.bias_ih_l0.grad),
        (scratch.W_hq.grad, head.weight.grad.T),
        (scratch.b_q.grad, head.bias.grad),
    ]
    for mine, reference in pairs:
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-6)


def test_zero_state_by_default():
    torch.manual_seed(0)
    scratch = RNNScratch(V, V, H)
    tokens = torch.randint(V, (B, T))
    torch.testing.assert_close(scratch(tokens)[0], scratch(tokens, torch.zeros(B, H))[0])
