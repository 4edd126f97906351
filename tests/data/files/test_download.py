import hashlib
from pathlib import Path

import pytest

from rnnlab.data.files.download import fetch_verified
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
