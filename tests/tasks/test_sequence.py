"""What `SequenceTask` shares between streams tasks: the per-batch training loss it reports."""

import torch
from torch.nn import functional as F

from rnnlab.tasks.sequence import mean_loss


def test_mean_loss_weights_each_piece_by_its_time_steps():
    """A window of 12 steps cut into pieces of 5, 5 and 2 (truncated BPTT): the batch's loss is the
    mean over every scored token, as one cross-entropy over the whole window gives it."""
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 12, 7), torch.randint(7, (3, 12))
    pieces = [(logits[:, a:b], targets[:, a:b]) for a, b in ((0, 5), (5, 10), (10, 12))]
    losses = [F.cross_entropy(x.flatten(0, 1), y.flatten()) for x, y in pieces]
    whole = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(mean_loss(losses, [5, 5, 2]), whole)
    assert not torch.allclose(torch.stack(losses).mean(), whole)  # the unweighted mean would be off
    torch.testing.assert_close(
        mean_loss(losses[:2], [5, 5]),
        F.cross_entropy(logits[:, :10].flatten(0, 1), targets[:, :10].flatten()),
    )
