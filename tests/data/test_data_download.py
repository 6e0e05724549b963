"""Checksums, the download path (exercised with file:// URLs) and safe archive extraction."""

import gzip
import hashlib
import io
import tarfile

import pytest

from cnnlab.data import download_file, extract_archive, verify_checksum
from cnnlab.data.download import file_digest
from cnnlab.data.idx import IDX_DATASETS
from cnnlab.errors import DataError


def test_verify_checksum_match_and_mismatch(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"cnnlab")
    md5 = hashlib.md5(b"cnnlab").hexdigest()
    assert verify_checksum(p, md5=md5) is True
    assert verify_checksum(p) is False  # nothing to check
    assert verify_checksum(p, sha256=hashlib.sha256(b"cnnlab").hexdigest()) is True
    with pytest.raises(DataError, match="md5 checksum mismatch") as e:
        verify_checksum(p, md5="0" * 32)
    assert str(p) in str(e.value)
    with pytest.raises(DataError, match="not found"):
        verify_checksum(tmp_path / "nope", md5=md5)


def test_content_checksum_of_gz_ignores_recompression(tmp_path):
    payload = b"idx payload" * 100
    a, b = tmp_path / "a.gz", tmp_path / "b.gz"
    a.write_bytes(gzip.compress(payload, compresslevel=1))
    b.write_bytes(gzip.compress(payload, compresslevel=9, mtime=123))
    assert file_digest(a) != file_digest(b)
    sha = hashlib.sha256(payload).hexdigest()
    assert verify_checksum(a, sha256=sha, decompress=True) and verify_checksum(b, sha256=sha, decompress=True)


def test_real_fashion_mnist_content_checksums():
    spec = IDX_DATASETS["fashion-mnist"]
    f = "t10k-labels-idx1-ubyte.gz"
    assert verify_checksum(f"/usr/share/datasets/fashion-mnist/{f}", sha256=spec.content_sha256[f], decompress=True)


def test_download_file_url_checksum_and_atomicity(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 5000)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    dest = download_file(src.as_uri(), tmp_path / "out" / "f.bin", md5=md5)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(DataError, match="checksum mismatch") as e:
        download_file(src.as_uri(), tmp_path / "out2" / "g.bin", md5="1" * 32)
    assert "g.bin" in str(e.value)
    assert list((tmp_path / "out2").iterdir()) == []  # no partial or bad file left behind
    with pytest.raises(DataError, match="cannot download"):
        download_file((tmp_path / "missing").as_uri(), tmp_path / "h.bin")


def test_extract_archive_and_refuse_escape(tmp_path):
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        info = tarfile.TarInfo("d/a.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    extract_archive(good, tmp_path / "x")
    assert (tmp_path / "x" / "d" / "a.txt").read_bytes() == b"abc"
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"!"))
    with pytest.raises(DataError, match="unsafe"):
        extract_archive(evil, tmp_path / "y")
    assert not (tmp_path / "escape.txt").exists()
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(DataError, match="junk.tar.gz"):
        extract_archive(tmp_path / "junk.tar.gz", tmp_path / "z")
