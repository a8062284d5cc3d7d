"""File access of the data package: local paths and oss://bucket/key through easyretrieval.fileio.

Until easyretrieval.fileio is present only local paths work (a clear error names what is missing).
"""
import os
import posixpath

try:
    from easyretrieval import fileio as _fileio
except ImportError:  # the modelzoo helper's fileio has not landed yet
    _fileio = None

from easyretrieval.errors import UserError


def is_remote(path: str) -> bool:
    return "://" in str(path)


def _require_fileio(path):
    if _fileio is None:
        raise UserError(f"'{path}': remote paths need easyretrieval.fileio, which is not installed")
    return _fileio


def read_bytes(path: str) -> bytes:
    if _fileio is not None:
        return _fileio.read_bytes(path)
    if is_remote(path):
        _require_fileio(path)
    with open(path, "rb") as f:
        return f.read()


def exists(path: str) -> bool:
    if _fileio is not None:
        return _fileio.exists(path)
    if is_remote(path):
        _require_fileio(path)
    return os.path.exists(path)


def join(root: str, rel: str) -> str:
    if _fileio is not None:
        return _fileio.join(root, rel)
    if is_remote(root):
        return posixpath.join(root, rel)
    return os.path.join(root, rel)
