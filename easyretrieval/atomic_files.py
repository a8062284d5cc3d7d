"""Local files written whole or not at all: a temporary file beside the target, flushed to disk, renamed.

A reader (or a run resumed after SIGKILL) sees either the old file or the complete new one, never a part.
"""
import json
import os
from typing import Callable, Union


def write_atomic(path: str, content: Union[bytes, str, Callable], binary: bool = True) -> str:
    """Write `content` (bytes, str, or a function called with the open file) to `path` atomically."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    text = isinstance(content, str) or not binary
    with open(tmp, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as handle:
        if callable(content):
            content(handle)
        else:
            handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def write_json_atomic(path: str, obj, indent=1) -> str:
    """`obj` as UTF-8 JSON at `path`, atomically."""
    return write_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
