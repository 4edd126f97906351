"""Each private Lightning/torch/torchmetrics access rnnlab makes, checked against the installed versions.

A failure here names the accessor an upgrade broke (`rnnlab.lightning_internals`)."""

import lightning as L
import pytest
import torch
from torchmetrics import MeanMetric

from rnnlab import lightning_internals as internals
from tests.project import QUIET_TRAINER

QUIET = dict(
    **QUIET_TRAINER,
    num_sanity_val_steps=0,
    limit_val_batches=0,
)


class Probe(L.LightningModule):
    """A linear model that records what the accessors say at every training batch."""

    def __init__(self, manual: bool = False) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.automatic_optimization = not manual
        self.seen: list[tuple[int, int, bool]] = []

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        trainer = internals.attached_trainer(self)
        self.seen.append(
            (
                batch_idx,
                internals.batches_done_this_epoch(trainer),
                internals.writes_logs_after_this_batch(trainer),
            )
        )
        if self.automatic_optimization:
            return loss
        optimizer = self.optimizers().optimizer
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        internals.count_optimizer_step(trainer)
        internals.count_optimizer_step(trainer)  # two steps per batch, as a batch of two windows
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(12, 2))
        return torch.utils.data.DataLoader(data, batch_size=2)


def test_attached_trainer_is_none_until_a_trainer_runs_the_module():
    probe = Probe()
    assert internals.attached_trainer(probe) is None
    trainer = L.Trainer(max_epochs=1, **QUIET)
    trainer.fit(probe)
    assert internals.attached_trainer(probe) is trainer


def test_counted_optimizer_steps_are_global_steps_and_stop_at_max_steps():
    probe = Probe(manual=True)
    trainer = L.Trainer(max_steps=6, **QUIET)
    trainer.fit(probe)
    assert trainer.global_step == 6
    assert len(probe.seen) == 3  # Lightning stopped between batches on the counted steps


def test_batches_done_counts_the_batch_in_hand_and_logs_follow_log_every_n_steps():
    probe = Probe()
    trainer = L.Trainer(max_epochs=1, log_every_n_steps=2, **QUIET)
    trainer.fit(probe)
    assert [done for _, done, _ in probe.seen] == [1, 2, 3, 4, 5, 6]
    # every second batch, and the last one (training stops there)
    assert [logs for _, _, logs in probe.seen] == [False, True, False, True, False, True]


def test_hook_overrides_are_seen_on_callbacks_and_on_the_module():
    class Listens(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            pass

    class Hooked(Probe):
        def on_after_backward(self):
            pass

    trainer = L.Trainer(callbacks=[Listens()], **QUIET)
    assert internals.callbacks_override(trainer, ("on_before_optimizer_step",))
    assert not internals.callbacks_override(trainer, ("on_after_backward",))
    assert internals.module_overrides(Hooked(), ("on_after_backward",))
    assert not internals.module_overrides(Probe(), ("on_after_backward",))


@pytest.mark.parametrize(
    ("precision", "plain"), [("32-true", True), ("bf16-mixed", True), ("64-true", False)]
)
def test_precision_is_plain_only_without_loss_scaling_or_casts(precision, plain):
    assert internals.precision_is_plain(L.Trainer(precision=precision, **QUIET)) is plain


def test_closed_form_rates_and_setting_them():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    for _ in range(2):
        optimizer.step()
        cosine.step()
    assert internals.closed_form_rates(cosine) == pytest.approx([0.5])
    internals.set_scheduler_rates(cosine, [0.25])
    assert optimizer.param_groups[0]["lr"] == 0.25 and cosine.get_last_lr() == [0.25]
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=10)
    assert internals.closed_form_rates(one_cycle) is None
    from rnnlab.lr_schedules import BudgetSchedule  # rnnlab's own schedules give their rates publicly

    budget = BudgetSchedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0), "linear", 0.0)
    budget.follow(lambda: 0.25)
    assert internals.closed_form_rates(budget) == pytest.approx([1.5]) and budget.get_last_lr() == [1.5]


def test_a_metrics_update_count_can_be_restored():
    metric = MeanMetric()
    metric.update(torch.tensor(1.0))
    internals.set_update_count(metric, 5)
    assert metric.update_count == 5


def test_nothing_else_in_rnnlab_reaches_into_lightnings_loops_or_private_names():
    import re
    from pathlib import Path

    import rnnlab

    private = (
        "fit_loop",
        "batch_progress",
        "optim_step_progress",
        "._trainer",
        "is_overridden",
        "_get_closed_form_lr",
        "_update_count",
        "_last_lr",
        '["loops"]',
        "_logger_connector",
        "precision_plugin",
    )
    root = Path(rnnlab.__file__).parent
    offenders = [
        f"{path.relative_to(root)}: {name}"
        for path in root.rglob("*.py")
        if path.name != "lightning_internals.py"
        for name in private
        if re.search(r"(?<!\w)" + re.escape(name), path.read_text())
    ]
    assert offenders == []
