from types import SimpleNamespace

import torch
from torch.utils.data import DistributedSampler

from rnnlab.data.lessons.synthetic import SyntheticSequenceData


def examples(loader) -> list[float]:
    return [value for x, _ in loader for value in x[:, 0, 0].tolist()]


def test_training_order_is_shuffled_from_the_seed_and_changes_every_epoch():
    data = SyntheticSequenceData(num_samples=64, batch_size=8, seed=5)
    data.setup()
    loader = data.train_dataloader()
    first = examples(loader)
    loader.sampler.set_epoch(1)  # as Lightning does before every epoch
    second = examples(loader)
    assert sorted(first) == sorted(data.splits["train"][0][:, 0, 0].tolist()) and first != second
    again = SyntheticSequenceData(num_samples=64, batch_size=8, seed=5)
    again.setup()
    assert examples(again.train_dataloader()) == first
    assert examples(data.val_dataloader()) == data.splits["val"][0][:, 0, 0].tolist()  # in order


def test_each_process_gets_its_own_share_under_data_parallel_training():
    shares = []
    for rank in range(2):
        data = SyntheticSequenceData(num_samples=64, batch_size=8, seed=5)
        data.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        data.setup()
        loader = data.train_dataloader()
        assert isinstance(loader.sampler, DistributedSampler)
        shares.append(examples(loader))
    assert len(shares[0]) == len(shares[1]) == 32
    everything = torch.tensor(shares[0] + shares[1]).sort().values
    torch.testing.assert_close(everything, data.splits["train"][0][:, 0, 0].sort().values)
