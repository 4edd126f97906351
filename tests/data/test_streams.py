import pytest
import torch

from rnnlab.data.streams import FreshWindows, RandomWindows, SequentialPartition, TokenWindows, WindowGroups
from rnnlab.errors import UserError

# Tokens that are their own positions: a batch shows exactly where each row was cut from.
N = 1000
TOKENS = torch.arange(N)


def batches(sampler, epoch=0):
    sampler.set_epoch(epoch)
    windows = TokenWindows(TOKENS)
    return [windows[window] for window in sampler]


def test_sequential_rows_continue_across_batches_and_targets_are_shifted():
    sampler = SequentialPartition(N, batch_size=4, num_steps=7, seed=1)
    for epoch in range(5):
        epoch_batches = batches(sampler, epoch)
        assert len(epoch_batches) == len(sampler)
        for x, y in epoch_batches:
            assert x.shape == y.shape == (4, 7)
            assert torch.equal(y, x + 1)
            assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # each row is a contiguous stretch
        for (x, _), (x_next, _) in zip(epoch_batches, epoch_batches[1:], strict=False):
            assert torch.equal(x_next[:, 0], x[:, -1] + 1)  # row i of batch t+1 continues row i of batch t


def test_sequential_offset_is_random_per_epoch_but_reproducible():
    sampler = SequentialPartition(N, batch_size=4, num_steps=7, seed=1)
    first_tokens = {int(batches(sampler, epoch)[0][0][0, 0]) for epoch in range(20)}
    assert len(first_tokens) > 1 and all(0 <= t < 7 for t in first_tokens)
    again = SequentialPartition(N, batch_size=4, num_steps=7, seed=1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches(sampler, 3), batches(again, 3), strict=True))


def test_random_windows_do_not_overlap_and_follow_the_seed():
    sampler = RandomWindows(N, batch_size=5, num_steps=9, seed=2)
    xs = torch.cat([x for x, _ in batches(sampler, 0)])
    assert xs.shape == (len(sampler) * 5, 9)
    assert xs.flatten().unique().numel() == xs.numel()  # no token is read twice in an epoch
    assert len(sampler) == (N - 1 - 8) // 9 // 5
    assert not torch.equal(xs, torch.cat([x for x, _ in batches(sampler, 1)]))  # a new order each epoch


def test_evaluation_streams_score_every_token_once():
    sampler = SequentialPartition(N, batch_size=6, num_steps=50, random_offset=False, keep_tail=True)
    ys = batches(sampler)
    assert ys[-1][0].shape[1] < 50  # the shorter tail window is kept
    targets = torch.cat([y for _, y in ys], dim=1).flatten()
    stream = (N - 1) // 6
    assert sorted(targets.tolist()) == list(range(1, 6 * stream + 1))


@pytest.mark.parametrize("make", [SequentialPartition, RandomWindows])
def test_ranks_split_the_rows_and_together_make_the_single_process_batch(make):
    whole = batches(make(N, 4, 7, seed=3))
    parts = [batches(make(N, 4, 7, seed=3, rank=rank, world_size=2)) for rank in range(2)]
    for t, (x, _) in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][t][0], parts[1][t][0]]), x)


def test_batch_shapes_the_corpus_cannot_fill_are_refused():
    with pytest.raises(UserError, match="too few for batch_size=64 x num_steps=35"):
        SequentialPartition(1000, 64, 35)
    with pytest.raises(UserError, match="fewer than data.batch_size=64"):
        RandomWindows(1000, 64, 35)
    with pytest.raises(UserError, match="does not divide over 3 processes"):
        SequentialPartition(1000, 4, 7, rank=0, world_size=3)


@pytest.mark.parametrize("make", [SequentialPartition, RandomWindows])
def test_a_resumed_epoch_starts_at_the_batch_after_the_last_one_trained(make):
    whole = batches(make(N, 4, 7, seed=3), epoch=2)
    resumed = make(N, 4, 7, seed=3)
    resumed.resume_at(epoch=2, batches_done=5)
    rest = batches(resumed, epoch=2)
    assert len(rest) == len(whole) - 5
    assert all(torch.equal(a[0], b[0]) for a, b in zip(rest, whole[5:], strict=True))
    assert len(batches(resumed, epoch=3)) == len(whole)  # the next epoch is whole again


def test_a_position_saved_in_another_epoch_skips_nothing():
    sampler = SequentialPartition(N, 4, 7, seed=3)
    sampler.resume_at(epoch=1, batches_done=5)  # saved at the end of epoch 1: epoch 2 starts afresh
    assert len(batches(sampler, epoch=2)) == len(sampler)


@pytest.mark.parametrize("make", [SequentialPartition, RandomWindows])
def test_window_groups_hand_over_the_same_windows_side_by_side(make):
    single = batches(make(N, 4, 7, seed=3), epoch=1)
    groups = WindowGroups(make(N, 4, 7, seed=3), size=3)
    grouped = batches(groups, epoch=1)
    assert len(grouped) == len(groups) == -(-len(single) // 3)  # the last group holds the rest
    x = torch.cat([g[0] for g in grouped], dim=1)
    assert torch.equal(x, torch.cat([s[0] for s in single], dim=1))  # the same windows, in order
    groups.resume_at(epoch=1, batches_done=2)  # counted in groups
    assert torch.equal(batches(groups, epoch=1)[0][0], torch.cat([s[0] for s in single[6:9]], dim=1))


@pytest.mark.parametrize(("num_tokens", "window"), [(101, 10), (104, 10), (30, 29)])
def test_fresh_windows_score_every_token_once_with_at_most_a_window_of_context(num_tokens, window):
    tokens = torch.arange(num_tokens)
    sampler = FreshWindows(num_tokens, batch_size=4, window=window)
    batches = [TokenWindows(tokens)[w] for w in sampler]
    assert len(batches) == len(sampler)
    scored = torch.cat([targets.flatten() for _, targets in batches])
    assert scored.tolist() == list(range(1, num_tokens))  # every target once, in order
    assert all(inputs.shape[1] <= window and inputs.shape[0] <= 4 for inputs, _ in batches)


def test_fresh_windows_shard_batches_over_ranks():
    shards = [list(FreshWindows(101, 2, 10, rank=r, world_size=2)) for r in range(2)]
    together = sorted(int(s) for shard in shards for w in shard for s in w.starts)
    assert together == [int(s) for w in FreshWindows(101, 2, 10) for s in w.starts]


def test_a_window_longer_than_the_split_is_refused():
    with pytest.raises(UserError, match=r"data.eval_num_steps=64 is longer than the 49 tokens"):
        FreshWindows(50, 4, 64)
