"""Getting files safely: checksums, the official download, archive extraction, a restricted unpickler.

Nothing here touches the network unless :func:`download_file` is called (``--download``). Every
failure is a :class:`~cnnlab.errors.DataError` that names the file and what was expected.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from cnnlab.errors import DataError

_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike, algorithm: str = "md5", *, decompress: bool = False) -> str:
    """Hex digest of a file (of its gunzipped content when ``decompress`` and the name ends in .gz)."""
    path = Path(path)
    h = hashlib.new(algorithm)
    opener = gzip.open if decompress and path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    return h.hexdigest()


def verify_checksum(path: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None,
                    decompress: bool = False) -> bool:
    """Check ``path`` against the given digest(s); raise :class:`DataError` naming the file on mismatch.

    Returns ``True`` when a digest was given and matched, ``False`` when none was given (nothing to
    check). ``decompress`` hashes the gunzipped content of a ``.gz`` file (the idx payload), which
    stays the same when a distribution re-compresses the archive.
    """
    checked = False
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        got = file_digest(path, algorithm, decompress=decompress)
        if got.lower() != expected.lower():
            what = "content " if decompress else ""
            raise DataError(f"{path}: {what}{algorithm} checksum mismatch (expected {expected}, got {got}); "
                            "the file is corrupt or not the official one: delete it and fetch again")
        checked = True
    return checked


def download_file(url: str, dest: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None,
                  timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file + rename) and verify its checksum.

    An existing ``dest`` that already matches is kept. ``file://`` URLs work too (used in tests).
    """
    dest = Path(dest)
    if dest.exists():
        try:
            verify_checksum(dest, md5=md5, sha256=sha256)
            return dest
        except DataError:
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
            except (urllib.error.URLError, OSError, ValueError) as e:
                raise DataError(f"cannot download {url} to {dest}: {e} (no network? copy the file there "
                                "by hand instead)") from None
        verify_checksum(tmp, md5=md5, sha256=sha256)
        os.replace(tmp, dest)
    except DataError as e:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(str(e).replace(tmp, f"{dest} (downloaded from {url})")) from None
    return dest


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a ``.tar``/``.tar.gz``/``.tgz`` into ``dest``, refusing members that escape it."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                target = (root / m.name).resolve()
                if not (target == root or root in target.parents) or m.issym() or m.islnk() or m.isdev():
                    raise DataError(f"{archive}: refusing unsafe archive member {m.name!r}")
            tar.extractall(root, members=members, filter="data")
    except FileNotFoundError:
        raise DataError(f"{archive}: file not found") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: not a readable tar archive ({e})") from None
    return dest


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can build only numpy arrays and plain containers (CIFAR's python format).

    CIFAR's "python version" files are pickles; a plain ``pickle.load`` on a downloaded file can run
    arbitrary code. This one resolves no global except numpy's array reconstruction helpers, so a
    tampered file fails with :class:`DataError` instead of executing anything.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol < 3
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        import numpy as np

        if name == "_reconstruct":  # Python-2-era files name numpy.core, numpy 2 moved it to numpy._core
            return np.zeros(0).__reduce__()[0]
        return super().find_class(module, name)


def restricted_pickle_load(path: str | os.PathLike):
    """Load a CIFAR-style pickle (latin-1 strings, numpy arrays) with :class:`_RestrictedUnpickler`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    if not data:
        raise DataError(f"{path}: file is empty")
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:
        raise DataError(f"{path}: not a valid CIFAR python pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict in the CIFAR pickle, found {type(obj).__name__}")
    return obj
