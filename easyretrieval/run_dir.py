"""Who owns an output folder: the checks before any work, the folder's lock, and where a mode writes.

- `mode_output_dir(path, mode)`: evaluate and predict given a folder that holds another run's record (its
  config.json names another mode, e.g. a training run) write into the subfolder `<mode>/`, so that run's
  config.json, log.txt and per-split results stay as they were.
- `claim_output_dir(path, mode)`: refuses, in one line and before any work, an output_dir that is a file or
  cannot be created or written; then takes an exclusive lock (fcntl.flock on `OUTPUT_DIR/.easyretrieval.lock`) that the
  process holds until it ends: a second run into the same folder is refused in one line. The kernel releases
  the lock when the process ends, however it ends (SIGKILL too), so a killed run never leaves it stuck.
  A new folder is created with its lock already taken (built under a temporary name, then renamed), so a
  run that sees the folder appear also sees it locked. On several nodes the folder must be on a shared file
  system that supports flock (local disks, NFSv4 and Lustre do).
- `check_train_output_dir(path, continuing)`: a training run does not mix its log and checkpoints into a
  folder holding another run (another mode's, or an earlier training it does not resume).
"""
import errno
import fcntl
import json
import os
import shutil
import socket
import tempfile
import time
from typing import Optional

from easyretrieval.errors import UserError

CONFIG_FILE = "config.json"
LOCK_FILE = ".easyretrieval.lock"

_held = {}  # absolute path -> open lock file: kept open (so locked) for the life of the process


def recorded_mode(path: str) -> Optional[str]:
    """The mode named by `path`/config.json, or None when there is none (or it is unreadable)."""
    try:
        with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as f:
            mode = json.load(f).get("mode")
    except (OSError, ValueError, AttributeError):
        return None
    return mode if isinstance(mode, str) else None


def mode_output_dir(path: str, mode: str) -> str:
    """Where a run of `mode` writes when given `--output_dir path` (see the module docstring)."""
    if mode == "train":
        return path
    recorded = recorded_mode(path)
    if recorded is not None and recorded != mode:
        return os.path.join(path, mode)
    return path


def previous_training(path: str) -> Optional[str]:
    """'log.txt, checkpoints/step_00000012' (what an earlier training left in `path`), or None."""
    from easyretrieval.engine.checkpointing import list_complete

    found = []
    log = os.path.join(path, "log.txt")
    if os.path.isfile(log) and os.path.getsize(log) > 0:
        found.append("log.txt")
    complete = list_complete(os.path.join(path, "checkpoints"))
    if complete:
        found.append(os.path.relpath(complete[-1][1], path))
    return ", ".join(found) or None


def check_train_output_dir(path: str, continuing: bool) -> None:
    """A training run writes into `path` only if the folder holds no other run's results: none of another
    mode, and none of an earlier training unless this run continues it (resume from its checkpoints)."""
    recorded = recorded_mode(path)
    if recorded not in (None, "train"):
        raise _refuse(path, f"holds the results of a {recorded} run")
    found = None if continuing else previous_training(path)
    if found:
        raise UserError(f"--output_dir '{path}' holds an earlier training run ({found}); continue it with "
                        "resume=auto, or choose another --output_dir (or remove this one)")


def _refuse(path, what):
    return UserError(f"--output_dir '{path}' {what}; choose another --output_dir")


def _check_not_file(path):
    if os.path.exists(path) and not os.path.isdir(path):
        raise _refuse(path, "is an existing file, not a folder")


def _check_writable(path):
    """Create and remove a file in `path` (os.access misses read-only mounts and ACLs)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise _refuse(path, f"cannot be written ({e.strerror})") from None


def _open_lock(path):
    try:
        return open(os.path.join(path, LOCK_FILE), "a+", encoding="utf-8")
    except OSError as e:
        raise _refuse(path, f"cannot be written ({e.strerror})") from None


def _holder(handle):
    handle.seek(0)
    try:
        info = json.loads(handle.read() or "{}")
    except ValueError:
        info = {}
    if not info:
        return "another run"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"a {info.get('mode', '?')} run (pid {info.get('pid', '?')} on {info.get('host', '?')}, since {since})"


def _lock(path, handle, mode):
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise _refuse(path, f"cannot be locked ({e.strerror})") from None
        holder = _holder(handle)
        handle.close()
        raise UserError(f"--output_dir '{path}' is in use by {holder}; wait for it to end or choose another "
                        "--output_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"mode": mode, "pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.time()}))
    handle.flush()


def _create_locked(path, mode):
    """Create `path` with its lock taken; None when another process created it first."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.new-", dir=parent)
    except OSError as e:
        raise _refuse(path, f"cannot be created ({e.strerror} in '{parent}')") from None
    handle = _open_lock(staging)
    _lock(staging, handle, mode)
    try:
        os.rename(staging, path)  # fails if `path` appeared meanwhile (it holds a lock file: not empty)
    except OSError:
        handle.close()
        shutil.rmtree(staging, ignore_errors=True)
        if os.path.isdir(path):
            return None
        _check_not_file(path)
        raise
    return handle


def claim_output_dir(path: str, mode: str) -> None:
    """Check that `path` can be this run's output folder, create it, and lock it for this process."""
    key = os.path.abspath(path)
    if key in _held:
        return
    _check_not_file(path)
    handle = None
    if not os.path.exists(path):
        handle = _create_locked(path, mode)
    if handle is None:
        _check_writable(path)
        handle = _open_lock(path)
        _lock(path, handle, mode)
    _held[key] = handle


def release_output_dir(path: str) -> None:
    """Give up the lock of `path` (a process that ends releases it anyway)."""
    handle = _held.pop(os.path.abspath(path), None)
    if handle is not None:
        handle.close()
