from types import SimpleNamespace

import torch
from torch.utils.data import TensorDataset

from rnnlab.data.lessons.synthetic import SyntheticSequenceData
from rnnlab.data.position import ShuffledExamples


def fake_trainer(epoch: int, batches_done: int) -> SimpleNamespace:
    progress = SimpleNamespace(current=SimpleNamespace(ready=batches_done))
    loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))
    return SimpleNamespace(current_epoch=epoch, fit_loop=loop, world_size=1, global_rank=0)


def test_shuffled_examples_follow_seed_and_epoch_and_resume_mid_epoch():
    dataset = TensorDataset(torch.arange(50))
    sampler = ShuffledExamples(dataset, batch_size=8, seed=4)
    sampler.set_epoch(3)
    whole = list(sampler)
    assert sorted(whole) == list(range(50))
    sampler.resume_at(epoch=3, batches_done=2)
    assert list(sampler) == whole[16:]
    assert list(sampler) == whole  # once only


def test_the_datamodule_saves_its_position_and_hands_it_to_the_next_training_loader():
    data = SyntheticSequenceData(num_samples=64, batch_size=8, seed=5)
    data.setup()
    data.trainer = fake_trainer(epoch=2, batches_done=3)
    state = data.state_dict()
    assert state == {"epoch": 2, "batches_done": 3}
    loader = data.train_dataloader()
    loader.sampler.set_epoch(2)
    whole = [x for x, _ in loader]

    resumed = SyntheticSequenceData(num_samples=64, batch_size=8, seed=5)
    resumed.setup()
    resumed.trainer = fake_trainer(epoch=0, batches_done=0)
    resumed.load_state_dict(state)
    loader = resumed.train_dataloader()
    loader.sampler.set_epoch(2)
    rest = [x for x, _ in loader]
    assert len(rest) == len(whole) - 3
    assert all(torch.equal(a, b) for a, b in zip(rest, whole[3:], strict=True))
