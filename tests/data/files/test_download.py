import hashlib
from pathlib import Path

import pytest

from rnnlab.data.files.download import BUNDLED, DataFile, fetch_verified
from rnnlab.errors import UserError

CONTENT = b"the time machine\n" * 100
SHA1 = hashlib.sha1(CONTENT).hexdigest()


def test_good_download_is_verified_and_moved_into_place(http_server, tmp_path: Path):
    url, served = http_server
    (served / "corpus.txt").write_bytes(CONTENT)
    dest = tmp_path / "cache" / "corpus.txt"
    assert fetch_verified(f"{url}/corpus.txt", dest, SHA1) == dest
    assert dest.read_bytes() == CONTENT
    assert [p.name for p in dest.parent.iterdir()] == ["corpus.txt"]  # no temp file left


def test_wrong_checksum_deletes_the_download_and_says_so(http_server, tmp_path: Path):
    url, served = http_server
    (served / "corpus.txt").write_bytes(CONTENT + b"tampered")
    dest = tmp_path / "cache" / "corpus.txt"
    with pytest.raises(UserError, match=f"expected {SHA1}; it was deleted"):
        fetch_verified(f"{url}/corpus.txt", dest, SHA1)
    assert list(dest.parent.iterdir()) == []


def test_unreachable_server_names_the_url_and_where_to_put_the_file(http_server, tmp_path: Path):
    url, _ = http_server
    dest = tmp_path / "cache" / "corpus.txt"
    with pytest.raises(UserError, match="could not download") as error:
        fetch_verified(f"{url}/missing.txt", dest, SHA1)  # 404
    assert f"{url}/missing.txt" in str(error.value) and str(dest) in str(error.value)
    assert list(dest.parent.iterdir()) == []


def test_server_gone(tmp_path: Path):
    import socket

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dest = tmp_path / "corpus.txt"
    with pytest.raises(UserError, match=f"could not download http://127.0.0.1:{port}/corpus.txt"):
        fetch_verified(f"http://127.0.0.1:{port}/corpus.txt", dest, SHA1, timeout=5)
    assert not dest.exists()


# The data configs that may use a copy shipped inside the package, with the file each names.
SHIPPED = {"timemachine": "timemachine.txt", "diabetes": "diabetes.csv.gz"}


def data_file(name: str, data_dir: Path, **changes) -> DataFile:
    from tests.project import compose_train

    cfg = compose_train(f"data={name}").data
    content = name == "diabetes"  # its checksum is that of the uncompressed CSV
    settings = {
        "path": None,
        "data_dir": str(data_dir),
        "filename": cfg.filename,
        "url": None,
        "sha1": cfg.sha1,
    }
    return DataFile(**{**settings, **changes}, content=content)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_shipped_copies_are_the_files_the_data_configs_verify(name, tmp_path: Path):
    shipped = data_file(name, tmp_path).bundled
    assert shipped == BUNDLED / SHIPPED[name] and shipped.stat().st_size > 10_000
    assert data_file(name, tmp_path, sha1="0" * 40).bundled is None  # another file of that name: not used


def test_the_shipped_copy_comes_after_data_path_and_the_data_directory(tmp_path: Path):
    empty = tmp_path / "empty"
    offline = data_file("timemachine", empty, url="http://127.0.0.1:9/timemachine.txt")
    offline.prepare()  # no download tried: the shipped copy is used, and nothing is written
    assert offline.source() == BUNDLED / "timemachine.txt" and not empty.exists()

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "timemachine.txt").write_bytes((BUNDLED / "timemachine.txt").read_bytes())
    assert data_file("timemachine", data_dir).source() == data_dir / "timemachine.txt"

    own = tmp_path / "own.txt"
    own.write_text("my corpus\n")
    assert data_file("timemachine", data_dir, path=str(own)).source() == own


def test_a_sha256_config_verifies_the_download_with_sha256(http_server, tmp_path: Path):
    url, served = http_server
    (served / "enwik8.zip").write_bytes(CONTENT)
    good = hashlib.sha256(CONTENT).hexdigest()
    file = DataFile(None, str(tmp_path / "data"), "enwik8.zip", f"{url}/enwik8.zip", sha256=good)
    file.prepare()
    assert file.source().read_bytes() == CONTENT
    wrong = DataFile(None, str(tmp_path / "other"), "enwik8.zip", f"{url}/enwik8.zip", sha256="0" * 64)
    with pytest.raises(UserError, match=f"has SHA256 {good}, expected 0000"):
        wrong.prepare()
    assert not list((tmp_path / "other").iterdir())  # nothing left behind


def test_a_datamodule_built_without_a_data_dir_uses_rnnlab_data_dir_as_the_configs_do(
    isolated, repetitive_corpus, monkeypatch
):
    from rnnlab.data.lessons.mnist import MNISTData
    from rnnlab.data.text.datamodule import LanguageModelData

    text = LanguageModelData(path=str(repetitive_corpus), batch_size=4, num_steps=10)
    text.prepare_data()  # tokenises into <data dir>/cache/
    assert list((isolated.data_dir / "cache").iterdir())
    assert MNISTData().folder() == isolated.data_dir / "mnist"
    monkeypatch.delenv("RNNLAB_DATA_DIR")
    assert MNISTData().folder() == isolated.home / ".cache" / "rnnlab" / "mnist"  # the documented default
