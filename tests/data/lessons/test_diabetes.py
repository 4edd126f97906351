import gzip
import hashlib
import logging
import random
from pathlib import Path

import pytest
import torch

from rnnlab.contract import ClassInputs, InputKind
from rnnlab.data.lessons.diabetes import DiabetesData, read_diabetes_csv
from rnnlab.errors import UserError

KAGGLE_HEADER = (
    "Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age,Outcome"
)


def scaled_rows(n: int = 40, features: int = 8, seed: int = 0) -> list[list[float]]:
    """Course-style rows: features in [-1, 1], the first one unique per row (an id), a 0/1 label last."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        values = [round(i / n, 4)] + [round(rng.uniform(-1, 1), 4) for _ in range(features - 1)]
        rows.append(values + [float(i % 3 == 0)])
    return rows


def kaggle_rows(n: int = 30) -> list[list[float]]:
    """Raw Kaggle-style values (glucose ~150, insulin up to ~800); Outcome last."""
    rng = random.Random(1)
    rows = [[6, 148, 72, 35, 0, 33.6, 0.627, 50, 1]]
    for i in range(n - 1):
        rows.append(
            [rng.randint(0, 17), rng.randint(44, 199), rng.randint(0, 122), rng.randint(0, 99)]
            + [rng.randint(0, 846), round(rng.uniform(18, 67), 1), round(rng.uniform(0.08, 2.4), 3)]
            + [rng.randint(21, 81), i % 2]
        )
    return rows


def csv_text(rows: list[list[float]], header: str | None = None) -> str:
    lines = ([header] if header else []) + [",".join(f"{v:g}" for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str, compress: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


# -- reading ----------------------------------------------------------------------------------------
def test_headerless_gzip_and_plain_csv_round_trip(tmp_path: Path):
    rows = scaled_rows()
    text = csv_text(rows)
    expected = torch.tensor(rows, dtype=torch.float32)
    # gzip is told by its magic bytes: gzip content under a .csv name and plain text under .gz both read.
    for name, compress in (("a.csv.gz", True), ("b.csv", False), ("c.csv", True), ("d.csv.gz", False)):
        x, y = read_diabetes_csv(write(tmp_path / name, text, compress))
        assert x.dtype == y.dtype == torch.float32
        assert x.shape == (40, 8) and y.shape == (40,)
        torch.testing.assert_close(x, expected[:, :8])
        torch.testing.assert_close(y, expected[:, 8])


def test_kaggle_header_labels_come_from_outcome_and_auto_rescales(tmp_path: Path, caplog):
    rows = kaggle_rows()
    path = write(tmp_path / "diabetes.csv", csv_text(rows, KAGGLE_HEADER))
    x, y = read_diabetes_csv(path)
    assert x.shape == (30, 8) and x[0, 1] == 148  # raw values, header row skipped
    torch.testing.assert_close(y, torch.tensor([row[8] for row in rows], dtype=torch.float32))

    # Outcome moved to the front: still the label, and the last column (Age) is a feature.
    moved = ["Outcome," + KAGGLE_HEADER.removesuffix(",Outcome")]
    moved += [",".join(f"{v:g}" for v in [row[8]] + row[:8]) for row in rows]
    x2, y2 = read_diabetes_csv(write(tmp_path / "moved.csv", "\n".join(moved) + "\n"))
    torch.testing.assert_close(y2, y)
    torch.testing.assert_close(x2, x)

    data = DiabetesData(path=str(path), rescale="auto", splits=(0.6, 0.2, 0.2))
    with caplog.at_level(logging.INFO, logger="rnnlab.data.lessons.diabetes"):
        data.setup()
    assert "min-max scaled" in caplog.text
    features = torch.cat([data.splits[s][0] for s in ("train", "val", "test")])
    assert torch.allclose(features.min(0).values, torch.tensor(-1.0))
    assert torch.allclose(features.max(0).values, torch.tensor(1.0))
    assert data.task_inputs() == ClassInputs(("no diabetes", "diabetes"), binary=True)  # Outcome 1 = diabetes


def test_rescale_modes(tmp_path: Path):
    kaggle = str(write(tmp_path / "k.csv", csv_text(kaggle_rows(), KAGGLE_HEADER)))
    scaled = str(write(tmp_path / "s.csv", csv_text(scaled_rows())))

    def features(path: str, rescale: str) -> torch.Tensor:
        data = DiabetesData(path=path, rescale=rescale)
        data.setup()
        return torch.cat([data.splits[s][0] for s in ("train", "val", "test")])

    raw = features(kaggle, "none")  # left as read, although far outside [-1, 1]
    assert raw.max() == max(max(row[:8]) for row in kaggle_rows()) > 100
    original = torch.tensor(scaled_rows(), dtype=torch.float32)[:, :8]
    auto = features(scaled, "auto")  # already in [-1, 1]: left alone
    assert torch.equal(auto.sort(0).values, original.sort(0).values)
    assert not torch.equal(features(scaled, "minmax").sort(0).values, original.sort(0).values)
    with pytest.raises(UserError, match="data.rescale='zscore' is unknown; choose one of auto, minmax, none"):
        DiabetesData(path=scaled, rescale="zscore")


GOOD = csv_text(scaled_rows(12))


def replace_line(text: str, line: int, new: str) -> str:
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (gzip.compress(GOOD.encode())[:-12], ["corrupt or truncated gzip"]),
        (b"\x1f\x8b" + b"not really gzip" * 4, ["corrupt or truncated gzip"]),
        (b"", ["is empty"]),
        (b"\n\n  \n", ["is empty"]),
        (replace_line(GOOD, 5, "0.1,0.2,0.3,1").encode(), ["line 5,", "has 4 columns, expected 9"]),
        (replace_line(GOOD, 7, "0.1,0.2,abc,0,0,0,0,0,1").encode(), ["line 7,", "'abc' is not a"]),
        (replace_line(GOOD, 8, "0.1,0.2,nan,0,0,0,0,0,1").encode(), ["line 8,", "'nan' is not a"]),
        (replace_line(GOOD, 3, "0.1,0.2,0.3,0,0,0,0,0,2").encode(), ["line 3:", "label '2'", "not 0 or 1"]),
        (csv_text(scaled_rows(5)).encode(), ["has 5 data rows", "at least 10"]),
        (csv_text(kaggle_rows(), KAGGLE_HEADER.replace("Outcome", "Label")).encode(), ["without an Outcome"]),
        (b"\xff\xfe" + "1,0\n".encode("utf-16-le") * 20, ["not a text CSV"]),
    ],
    ids=[
        "truncated-gzip",
        "corrupt-gzip",
        "empty",
        "blank",
        "columns",
        "non-numeric",
        "nan",
        "label",
        "few-rows",
        "no-outcome",
        "binary",
    ],
)
def test_malformed_files_raise_one_line_user_errors(tmp_path: Path, content: bytes, expected: list[str]):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(UserError) as error:
        read_diabetes_csv(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    for part in expected:
        assert part in message


def test_missing_file_says_where_to_put_it(tmp_path: Path):
    data = DiabetesData(data_dir=str(tmp_path), filename="mine.csv.gz", url=None)  # not the shipped file
    data.prepare_data()
    with pytest.raises(UserError, match=f"{tmp_path / 'mine.csv.gz'} does not exist; pass data.path"):
        data.setup()


def test_with_nothing_at_hand_the_copy_shipped_with_rnnlab_is_read(tmp_path: Path):
    data = DiabetesData(data_dir=str(tmp_path / "empty"), url=None)
    data.prepare_data()
    data.setup()
    assert sum(len(split[1]) for split in data.splits.values()) == 759  # the course's file
    assert not (tmp_path / "empty").exists()


# -- splits -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("splits", [(0.5, 0.5), (0.8, 0.3, -0.1), (0.5, 0.3, 0.3), (1.0, 0.0, 0.0)])
def test_bad_splits_are_refused(tmp_path: Path, splits):
    with pytest.raises(UserError, match="must be three positive fractions"):
        DiabetesData(path=str(tmp_path / "x.csv"), splits=splits)


def split_ids(path: Path, seed: int) -> dict[str, list[float]]:
    data = DiabetesData(path=str(path), seed=seed)
    data.setup()
    return {name: [round(v, 4) for v in x[:, 0].tolist()] for name, (x, _) in data.splits.items()}


def test_split_sizes_cover_every_row_once_and_follow_the_seed(tmp_path: Path):
    path = write(tmp_path / "d.csv", csv_text(scaled_rows(40)))
    ids = split_ids(path, seed=0)
    assert [len(ids[s]) for s in ("train", "val", "test")] == [28, 6, 6]
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == sorted(row[0] for row in scaled_rows(40))
    assert split_ids(path, seed=0) == ids
    assert split_ids(path, seed=1) != ids


def test_sizes_batches_and_class_names_of_the_course_layout(tmp_path: Path):
    data = DiabetesData(path=str(write(tmp_path / "d.csv.gz", csv_text(scaled_rows(40)), True)), batch_size=8)
    assert data.input_kind is InputKind.FEATURES
    data.setup()
    assert data.network_sizes() == {"input_size": 8, "output_size": 1}
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (8, 8) and y.shape == (8,) and x.dtype == y.dtype == torch.float32
    # The course's headerless file has label 1 = no diabetes (the complement of Outcome).
    assert data.task_inputs() == ClassInputs(("diabetes", "no diabetes"), binary=True)

    five = DiabetesData(path=str(write(tmp_path / "five.csv", csv_text(scaled_rows(20, features=5)))))
    five.setup()
    assert five.network_sizes() == {"input_size": 5, "output_size": 1}


# -- where the file comes from -------------------------------------------------------------------------
def test_download_is_verified_and_lands_in_the_data_dir(http_server, tmp_path: Path):
    url, served = http_server
    text = csv_text(scaled_rows(20))
    write(served / "diabetes.csv.gz", text, compress=True)
    cache = tmp_path / "cache"
    data = DiabetesData(data_dir=str(cache), url=f"{url}/diabetes.csv.gz", sha1=sha1(text))
    data.prepare_data()
    assert [p.name for p in cache.iterdir()] == ["diabetes.csv.gz"]
    data.setup()
    assert sum(len(y) for _, y in data.splits.values()) == 20
    data.prepare_data()  # the copy is there and checks out: nothing happens


def test_wrong_checksum_leaves_nothing_in_the_data_dir(http_server, tmp_path: Path):
    url, served = http_server
    write(served / "diabetes.csv.gz", csv_text(scaled_rows(20)), compress=True)
    cache = tmp_path / "cache"
    data = DiabetesData(data_dir=str(cache), url=f"{url}/diabetes.csv.gz", sha1="0" * 40)
    with pytest.raises(UserError, match=f"expected {'0' * 40}; it was deleted"):
        data.prepare_data()
    assert list(cache.iterdir()) == []


def test_corrupted_copy_in_the_data_dir_is_refused(http_server, tmp_path: Path):
    url, served = http_server
    good = csv_text(scaled_rows(20))
    write(served / "diabetes.csv.gz", good, compress=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    write(cache / "diabetes.csv.gz", replace_line(good, 4, "0.5,0,0,0,0,0,0,0,1"), compress=True)
    data = DiabetesData(data_dir=str(cache), url=f"{url}/diabetes.csv.gz", sha1=sha1(good))
    with pytest.raises(UserError, match="delete it to download it again, or pass data.path=FILE"):
        data.prepare_data()
    # An uncompressed copy with the right content passes: the checksum is of the CSV text.
    write(cache / "diabetes.csv.gz", good)
    data.prepare_data()


def test_path_comes_before_the_data_dir(tmp_path: Path):
    cache = tmp_path / "cache"
    cache.mkdir()
    write(cache / "diabetes.csv.gz", "garbage", compress=True)
    own = write(tmp_path / "mine.csv", csv_text(scaled_rows(20)))
    data = DiabetesData(path=str(own), data_dir=str(cache), url=None)
    data.prepare_data()
    data.setup()
    assert sum(len(y) for _, y in data.splits.values()) == 20
