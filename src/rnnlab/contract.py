"""The contract between a datamodule, its network and its task, checked before anything is built.

- Every datamodule says which kind of input its batches hold (`input_kind`) and every network class
  which kinds it takes (`accepts`).
- Every datamodule says which `TaskInputs` it hands its task (`hands_over`), and every task which
  it takes (`takes`); the two must be the same class (`task_fits`, the one rule for the pre-flight
  check and the task). `task_inputs()` then gives the values.
- `DataContract` declares what a datamodule offers besides Lightning's hooks.

`rnnlab.run.checks` refuses a pair that does not fit, in one line that names the choices that do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from rnnlab.data.text.vocab import Vocab


class InputKind(StrEnum):
    TOKENS = "token sequences [N, T] (integer ids)"
    SEQUENCES = "feature sequences [N, T, F]"
    FEATURES = "feature vectors [N, F]"
    IMAGES = "images [N, C, H, W]"


@dataclass(frozen=True)
class TaskInputs:
    """What a datamodule tells its task; the base holds nothing (e.g. regression on points)."""


@dataclass(frozen=True)
class StreamInputs(TaskInputs):
    """Batches that are windows of long streams (the sine curve, a corpus)."""

    num_steps: int  # steps per training window: the longest truncated-BPTT piece there can be
    carry_state: bool  # whether consecutive training batches continue each other
    # windows side by side in a training loader batch (one optimiser step each)
    windows_per_batch: int = field(default=1, kw_only=True)
    # whether validation and test carry the state from batch to batch (false: fresh windows)
    eval_carries_state: bool = field(default=True, kw_only=True)


@dataclass(frozen=True)
class TextInputs(StreamInputs):
    """A tokenised corpus: the streams and their vocabulary."""

    vocab: Vocab
    token_kind: str = "char"  # char | word | byte: char and byte models also report bits per token


@dataclass(frozen=True)
class ClassInputs(TaskInputs):
    """Labelled examples: the class names (index = label), and how the labels are laid out."""

    class_names: tuple[str, ...]
    binary: bool = False  # two classes scored by one logit
    label_per_step: bool = False  # a label at every step of a sequence, not one per sequence


def task_fits(takes: type[TaskInputs], hands_over: type[TaskInputs]) -> bool:
    """Whether a task that `takes` one class of inputs fits data that `hands_over` another: only the
    same class. A subclass carries more (a vocabulary, a token kind) that the task would ignore
    silently, as a sequence-regression task would a corpus."""
    return takes is hands_over


@runtime_checkable
class DataContract(Protocol):
    """What every rnnlab datamodule offers its network, its task and the run, besides Lightning's hooks."""

    input_kind: ClassVar[InputKind]  # what its batches hold: a network must accept it
    hands_over: ClassVar[type[TaskInputs]]  # the class of `task_inputs()`: a task must take it
    has_test_split: bool  # false: the run is not tested (a corpus whose protocol has no test block)

    def network_sizes(self) -> dict[str, Any]:
        """The sizes the data fixes (input and output widths, classes), given to the network's constructor."""
        ...

    def task_inputs(self) -> TaskInputs:
        """What the task needs to know of the data (after `setup`)."""
        ...

    def summary(self) -> dict[str, Any]:
        """Plain values for the run's metrics.json (e.g. how many held-out tokens were scored)."""
        ...
