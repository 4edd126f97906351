"""The search space of an Optuna search, from Hydra's override syntax.

`hydra.sweeper.params` and the command line share one syntax: `choice(a, b)` (or `a,b`) is a
categorical dimension, `interval(lo, hi)` a continuous one, `range(start, stop, step)` a stepped one,
and `tag(log, ...)` makes an interval or integer range log-scaled. A plain value on the command line
for a key of `params` fixes that key; every other plain override goes to each trial unchanged.
Kept free of torch, lightning and optuna at import: configs compose without them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    Glob,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.errors import HydraException

from rnnlab.errors import UserError

PRIMITIVE = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Dimension:
    """One searched key: a choice, an interval or a stepped range."""

    key: str
    kind: str  # "choice", "interval" or "range"
    choices: tuple[Any, ...] = ()  # choice: the values Optuna sees
    texts: tuple[str, ...] = ()  # choice: the same values as override text
    low: float = 0.0
    high: float = 0.0
    step: float | None = None  # range
    log: bool = False

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(self.choices)
        if self.kind == "range" and all(float(v).is_integer() for v in (self.low, self.high, self.step)):
            step = int(self.step)
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=step)
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid_values(self) -> list[Any]:
        """The values a grid search visits (a choice's, or a range's)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "range":
            count = int(round((self.high - self.low) / self.step)) + 1
            values = [self.low + i * self.step for i in range(count)]
            return [int(v) if isinstance(self.distribution().low, int) else v for v in values]
        raise UserError(
            f"{self.key}: the grid sampler needs choice(...) or range(...), not interval(...); "
            "use another sampler or list the values"
        )

    def override(self, value: Any) -> str:
        """The override that gives a trial this value."""
        if self.kind == "choice":
            return f"{self.key}={self.texts[self.choices.index(value)]}"
        return f"{self.key}={value!r}"


@dataclass(frozen=True)
class SearchSpace:
    dimensions: dict[str, Dimension] = field(default_factory=dict)
    fixed: tuple[str, ...] = ()  # overrides every trial gets as they are

    def distributions(self) -> dict[str, Any]:
        return {key: dim.distribution() for key, dim in self.dimensions.items()}

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """A trial's overrides: the fixed ones, then its value of every dimension."""
        return [*self.fixed, *(self.dimensions[key].override(params[key]) for key in self.dimensions)]

    def grid(self) -> dict[str, list[Any]]:
        return {key: dim.grid_values() for key, dim in self.dimensions.items()}


def dimension(override: Override, where: str) -> Dimension:
    """The dimension a sweep override describes; a malformed one is refused in one line."""
    key, sweep = override.get_key_element().lstrip("+~"), override.value()
    log = "log" in (getattr(sweep, "tags", None) or set())
    if isinstance(sweep, ChoiceSweep):
        values = list(override.sweep_iterator(transformer=Transformer.identity))
        texts = tuple(override.sweep_iterator(transformer=Transformer.encode))
        choices = tuple(v if isinstance(v, PRIMITIVE) else t for v, t in zip(values, texts, strict=True))
        if len(set(texts)) != len(texts):
            raise UserError(f"{where}: choice({', '.join(texts)}) lists a value twice")
        return Dimension(key, "choice", choices=choices, texts=texts)
    if isinstance(sweep, IntervalSweep):
        low, high = float(sweep.start), float(sweep.end)
        check_bounds(where, low, high, log, "interval")
        return Dimension(key, "interval", low=low, high=high, log=log)
    if isinstance(sweep, RangeSweep):
        if sweep.step is None or sweep.step <= 0 or sweep.stop is None:
            raise UserError(f"{where}: range(start, stop, step) needs a positive step")
        values = list(override.sweep_iterator(transformer=Transformer.identity))
        if not values:
            raise UserError(f"{where}: range({sweep.start}, {sweep.stop}, {sweep.step}) is empty")
        low, high = float(values[0]), float(values[-1])
        check_bounds(where, low, high if len(values) > 1 else high + 1, log, "range")
        if log and sweep.step != 1:
            raise UserError(f"{where}: a log-scaled range needs step 1")
        return Dimension(key, "range", low=low, high=high, step=float(sweep.step), log=log)
    raise UserError(
        f"{where}: {override.input_line} is not a search dimension; use choice, interval or range"
    )


def check_bounds(where: str, low: float, high: float, log: bool, kind: str) -> None:
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise UserError(f"{where}: {kind}({low:g}, {high:g}) needs finite bounds, the lower one first")
    if log and low <= 0:
        raise UserError(f"{where}: a log-scaled {kind} needs bounds above 0, not {low:g}")


def parse(where: str, text: str) -> Override:
    try:
        return OverridesParser.create().parse_override(text)
    except HydraException as error:
        reason = str(error).strip().splitlines()[0]
        raise UserError(f"{where}: {reason}") from None


def search_space(params: dict[str, Any] | None, arguments: list[str]) -> SearchSpace:
    """The dimensions from `hydra.sweeper.params` and the command line, and the fixed overrides."""
    dimensions: dict[str, Dimension] = {}
    given = {}  # a single value in params: every trial gets it, unless the command line says otherwise
    for key, value in (params or {}).items():
        where = f"hydra.sweeper.params.{key}"
        text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        override = parse(where, f"{key}={text}")
        if override.is_sweep_override():
            dimensions[key] = dimension(override, f"{where}={text}")
        else:
            given[key] = f"{key}={text}"
    fixed = []
    for argument in arguments:
        override = parse(argument, argument)
        key = override.get_key_element().lstrip("+~")
        given.pop(key, None)
        if override.is_sweep_override():
            if isinstance(override.value(), Glob):
                raise UserError(f"{argument}: glob() cannot be searched; list the values with choice(...)")
            dimensions[key] = dimension(override, argument)
        else:
            dimensions.pop(key, None)  # a plain value fixes a searched key
            fixed.append(argument)
    return SearchSpace(dimensions, (*given.values(), *fixed))


def check_override_syntax(arguments: list[str]) -> None:
    """Every command-line override parses (a malformed `interval(5)` or `choice()` is refused in one
    line, before Hydra starts)."""
    for argument in arguments:
        if "=" in argument and not argument.startswith("-"):  # not an option, nor an option's value
            parse(argument, argument)
