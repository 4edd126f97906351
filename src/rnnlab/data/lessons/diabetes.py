"""`DiabetesData`: the Pima Indians diabetes table of the course's lessons 7-8, for binary classification.

Two layouts are read: the course's `diabetes.csv.gz` (no header, 8 features already scaled to [-1, 1],
label last) and the common Kaggle CSV (a header row, raw values, label column `Outcome`).

The two disagree on what label 1 means: in the course's file it is *no* diabetes (its labels are the
complement of the original `Outcome`; row 1, Outcome 1, has label 0 there), while `Outcome` 1 is
diabetes. Labels are kept as the file has them, so results match the lesson, and the class names
follow the layout: with a header 1 = diabetes, without one the course's convention 1 = no diabetes.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnlab.contract import ClassInputs, InputKind
from rnnlab.data.files.download import DataFile, default_data_dir, read_content
from rnnlab.data.lessons.in_memory import InMemoryData, Split
from rnnlab.data.splits import check_fractions, cut
from rnnlab.errors import UserError

log = logging.getLogger(__name__)

COURSE_URL = "https://raw.githubusercontent.com/hunkim/PyTorchZeroToAll/master/data/diabetes.csv.gz"
COURSE_SHA1 = "41cb9b1a5891d90be1655a0e13a30acef2685df1"  # of the uncompressed CSV
LABEL_COLUMN = "Outcome"
MIN_ROWS = 10
RESCALE = ("auto", "minmax", "none")
# Index = label. `Outcome` (header) counts diabetes as 1; the course's headerless file inverts it.
OUTCOME_CLASSES = ["no diabetes", "diabetes"]
COURSE_CLASSES = ["diabetes", "no diabetes"]


@dataclass(frozen=True)
class DiabetesTable:
    """What a diabetes CSV holds: features [N, F], 0/1 labels [N], feature names, and its layout."""

    features: torch.Tensor
    labels: torch.Tensor
    columns: list[str]
    has_header: bool


def _text(path: Path) -> str:
    """The file's text, decompressed if it is gzip (told by its magic bytes, not its name)."""
    raw = read_content(path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path} is not a text CSV (byte {error.start} is not UTF-8); give a CSV or .csv.gz file"
        ) from None


def _number(field: str) -> float | None:
    try:
        value = float(field)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_table(path: str | Path) -> DiabetesTable:
    """Read a diabetes CSV (plain or gzip), with or without a header; see the module docstring."""
    path = Path(path).expanduser()
    reader = csv.reader(io.StringIO(_text(path)))
    rows: list[tuple[int, list[str]]] = []  # (line number, fields); blank lines are skipped
    for fields in reader:
        if any(field.strip() for field in fields):
            rows.append((reader.line_num, [field.strip() for field in fields]))
    if not rows:
        raise UserError(f"{path} is empty; give a CSV with one row per person and a 0/1 label column")
    first_line, first = rows[0]
    has_header = any(_number(field) is None for field in first)
    if has_header:
        names = [name.lower() for name in first]
        if LABEL_COLUMN.lower() not in names:
            raise UserError(
                f"{path}, line {first_line}, is a header (not all numbers) without an {LABEL_COLUMN} column; "
                f"name the 0/1 label column {LABEL_COLUMN}, or drop the header to use the last column"
            )
        label_index = names.index(LABEL_COLUMN.lower())
        names, rows = first, rows[1:]
    else:
        label_index = len(first) - 1
        names = [f"column {i + 1}" for i in range(len(first))]
    if len(names) < 2:
        raise UserError(f"{path} has {len(names)} column; it needs feature columns and a 0/1 label column")
    features, labels = [], []
    for line, fields in rows:
        if len(fields) != len(names):
            raise UserError(
                f"{path}, line {line}, has {len(fields)} columns, expected {len(names)} "
                f"(as on line {first_line}); fix or delete that row"
            )
        values = []
        for index, field in enumerate(fields):
            value = _number(field)
            if value is None:
                raise UserError(
                    f"{path}, line {line}, {names[index]}: {field!r} is not a (finite) number; "
                    "fix or delete that row"
                )
            values.append(value)
        label = values.pop(label_index)
        if label not in (0.0, 1.0):
            raise UserError(
                f"{path}, line {line}: label {fields[label_index]!r} ({names[label_index]}) is not 0 or 1; "
                "this dataset is a binary classification"
            )
        features.append(values)
        labels.append(label)
    if len(rows) < MIN_ROWS:
        raise UserError(f"{path} has {len(rows)} data rows; it needs at least {MIN_ROWS} to split and train")
    columns = [name for index, name in enumerate(names) if index != label_index]
    return DiabetesTable(
        torch.tensor(features, dtype=torch.float32),
        torch.tensor(labels, dtype=torch.float32),
        columns,
        has_header,
    )


def read_diabetes_csv(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Features float32 [N, F] and labels float32 [N] of 0/1 from a diabetes CSV or .csv.gz."""
    table = read_table(path)
    return table.features, table.labels


def minmax_scale(features: torch.Tensor) -> torch.Tensor:
    """Every column mapped linearly onto [-1, 1] (a constant column becomes 0), as the course's file is."""
    low, high = features.min(dim=0).values, features.max(dim=0).values
    span = high - low
    scaled = 2 * (features - low) / torch.where(span > 0, span, torch.ones_like(span)) - 1
    return torch.where(span > 0, scaled, torch.zeros_like(scaled))


class DiabetesData(InMemoryData):
    """The diabetes table, shuffled from `seed` and cut into train / val / test by `splits`.

    Where the file comes from, in order: `path`; else `filename` in `data_dir`; else a download of
    `url` into `data_dir`, verified against `sha1` (of the uncompressed CSV) before it is used.
    Features are min-max scaled over the whole file (as the course's file was) when `rescale` says so.
    """

    input_kind = InputKind.FEATURES
    hands_over = ClassInputs

    def __init__(
        self,
        path: str | None = None,
        data_dir: str | None = None,  # None: $RNNLAB_DATA_DIR, else ~/.cache/rnnlab
        filename: str = "diabetes.csv.gz",
        url: str | None = COURSE_URL,
        sha1: str | None = COURSE_SHA1,
        splits: tuple[float, float, float] = (0.7, 0.15, 0.15),
        rescale: str = "auto",
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, seed)
        if rescale not in RESCALE:
            raise UserError(f"data.rescale={rescale!r} is unknown; choose one of {', '.join(RESCALE)}")
        self.file = DataFile(path, data_dir or default_data_dir(), filename, url, sha1, content=True)
        self.fractions = check_fractions(splits)  # `self.splits` holds the tensors (base class)
        self.rescale = rescale
        self.class_names: list[str] = OUTCOME_CLASSES

    # -- where the file comes from --------------------------------------------------------------
    def prepare_data(self) -> None:
        self.file.prepare()

    # -- the splits -----------------------------------------------------------------------------
    def load(self) -> dict[str, Split]:
        path = self.file.source()
        table = read_table(path)
        features = table.features
        outside = bool((features.abs() > 1).any())
        if self.rescale == "minmax" or (self.rescale == "auto" and outside):
            features = minmax_scale(features)
            log.info("%s: min-max scaled the %d feature columns to [-1, 1]", path.name, features.shape[1])
        self.class_names = OUTCOME_CLASSES if table.has_header else COURSE_CLASSES
        n = len(features)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        splits = {
            name: (features[rows], table.labels[rows]) for name, rows in cut(order, self.fractions).items()
        }
        log.info(
            "%s: %d rows, %.1f%% label 1 (%s), train/val/test %s",
            path.name,
            n,
            100 * float(table.labels.mean()),
            self.class_names[1],
            "/".join(str(len(split[1])) for split in splits.values()),
        )
        return splits

    # -- what the network and the task are told -------------------------------------------------
    def network_sizes(self) -> dict[str, Any]:
        """One input per feature column and one logit (the log-odds of label 1)."""
        assert self.splits, "call setup() first"
        return {"input_size": self.splits["train"][0].shape[1], "output_size": 1}

    def task_inputs(self) -> ClassInputs:
        """The class names, index = label (they depend on the file's layout; see the module docstring)."""
        assert self.splits, "call setup() first"
        return ClassInputs(tuple(self.class_names), binary=True)
