"""Stream one remote object into the cache: resume, retry with backoff, verify, then rename atomically.

The caller holds the node lock. Bytes go to `<dest>.part` (validators in `<dest>.part.json`), so a download
killed mid-way is resumed by the next process (with If-Range, so a changed object restarts from zero).
The file reaches `dest` only after its length and every checksum the server offered (crc64ecma, MD5)
match; a corrupt body is deleted and fetched again, and after the retries a UserError is raised.
"""
import base64
import dataclasses
import hashlib
import json
import os
import queue
import sys
import threading
import time

from oss2.utils import Crc64

from easyretrieval.log import get_logger
from easyretrieval.modelzoo._cache import write_sha256_record
from easyretrieval.modelzoo._sources import PermanentError, RangeNotSatisfiable, RemoteInfo, TransientError
from easyretrieval.secrets import mask_secrets


@dataclasses.dataclass
class RetryPolicy:
    """How hard to try. Read from the environment at call time so tests and users can tune it."""

    retries: int = 5  # failed attempts without progress before giving up
    checksum_retries: int = 2  # re-downloads after a checksum mismatch
    backoff_s: float = 1.0  # first wait; doubles each time
    backoff_max_s: float = 30.0

    @classmethod
    def from_env(cls):
        return cls(
            retries=int(os.environ.get("EASYRETRIEVAL_DOWNLOAD_RETRIES", cls.retries)),
            backoff_s=float(os.environ.get("EASYRETRIEVAL_DOWNLOAD_BACKOFF", cls.backoff_s)),
        )


class ChecksumMismatch(TransientError):
    pass


class DownloadFailed(Exception):
    """Raised once retries are exhausted or the server refuses for good; the message is user-facing."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status  # the HTTP status of a refusal (403, 404, ...), else None


class _Hashes:
    """sha256 always (it is recorded); MD5 and crc64 only when the server gave one to compare with."""

    def __init__(self, info=None):
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5() if info is None or info.md5_b64 else None
        self.crc64 = Crc64() if info is None or info.crc64 is not None else None
        self.size = 0

    def update(self, block):
        self.sha256.update(block)
        if self.md5 is not None:
            self.md5.update(block)
        if self.crc64 is not None:
            self.crc64.update(block)
        self.size += len(block)

    @classmethod
    def of_file(cls, path, info):
        hashes = cls(info)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                hashes.update(block)
        return hashes


def _load_state(part):
    """The saved RemoteInfo of a partial download, or None (and the stale files removed)."""
    try:
        with open(part + ".json", encoding="utf-8") as f:
            state = RemoteInfo(**json.load(f))
        if os.path.getsize(part) <= (state.size if state.size is not None else float("inf")):
            return state
    except (OSError, ValueError, TypeError):
        pass
    for stale in (part, part + ".json"):
        if os.path.exists(stale):
            os.remove(stale)
    return None


def _save_state(part, info):
    tmp = f"{part}.json.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info.to_dict(), f)
    os.replace(tmp, part + ".json")


def _verify(hashes, info, expected_size):
    """A list of what does not match (empty when the file is good)."""
    problems = []
    if info.size is not None and hashes.size != info.size:
        problems.append(f"length {hashes.size} != {info.size}")
    if expected_size is not None and hashes.size != expected_size:
        problems.append(f"length {hashes.size} != catalog size {expected_size}")
    if info.crc64 is not None and hashes.crc64.crc != info.crc64:
        problems.append(f"crc64ecma {hashes.crc64.crc} != {info.crc64}")
    if info.md5_b64 is not None and \
            base64.b64encode(hashes.md5.digest()).decode() != info.md5_b64:
        problems.append(f"md5 {base64.b64encode(hashes.md5.digest()).decode()} != {info.md5_b64}")
    return problems


def _progress_bar(total, initial, name, enabled):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                file=sys.stderr, leave=False, mininterval=0.5)


def _write_and_hash(chunks, f, hashes, bar):
    """Receive on this thread while a helper thread writes and hashes (both release the GIL), so the
    checksums cost little extra time. Whatever arrived before an error is written before it propagates."""
    blocks = queue.Queue(maxsize=16)
    failure = []

    def consume():
        while True:
            block = blocks.get()
            if block is None:
                return
            if failure:
                continue  # drain after a write error
            try:
                f.write(block)
                hashes.update(block)
                if bar is not None:
                    bar.update(len(block))
            except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
                failure.append(e)

    worker = threading.Thread(target=consume, name="easyretrieval-hash", daemon=True)
    worker.start()
    try:
        for block in chunks:
            if failure:
                break
            blocks.put(block)
    finally:
        blocks.put(None)
        worker.join()
    if failure:
        raise failure[0]


def _attempt(source, part, hashes, state, progress, name):
    """One request: append to `part` from where it ends. Returns the (possibly new) RemoteInfo."""
    start = hashes.size
    fetch = source.open(start, if_range=state.etag if state else None)
    try:
        if fetch.start != start:
            if fetch.start != 0:
                raise TransientError(f"server answered from byte {fetch.start}, asked for {start}")
            start = 0  # the server sent the whole object again (changed, or no Range support)
        if start == 0:
            state = fetch.info
            hashes.__init__(state)
            _save_state(part, state)
        elif fetch.info.size is not None and state.size is not None and fetch.info.size != state.size:
            raise RangeNotSatisfiable("object size changed since the partial download")
        bar = _progress_bar(state.size, start, name, progress)
        try:
            with open(part, "r+b" if start > 0 else "wb") as f:
                f.seek(start)
                f.truncate()
                _write_and_hash(fetch.chunks, f, hashes, bar)
                f.flush()
                os.fsync(f.fileno())
        finally:
            if bar is not None:
                bar.close()
    finally:
        fetch.close()
    if state.size is not None and hashes.size < state.size:
        raise TransientError(f"body ended after {hashes.size} of {state.size} bytes")
    return state


def download(source, dest, expected_size=None, progress=True, policy=None):
    """Fetch `source` into `dest` (verified, atomic). Returns the sha256 hex digest."""
    policy = policy or RetryPolicy.from_env()
    part = dest + ".part"
    name = os.path.basename(dest)
    failures = checksum_failures = 0
    last_error = None
    while True:
        state = _load_state(part) if os.path.exists(part) else None
        hashes = _Hashes.of_file(part, state) if state is not None else _Hashes()
        before = hashes.size
        try:
            state = _attempt(source, part, hashes, state, progress, name)
            problems = _verify(hashes, state, expected_size)
            if problems:
                for stale in (part, part + ".json"):
                    os.remove(stale)
                raise ChecksumMismatch("corrupt download (" + "; ".join(problems) + ")")
            os.replace(part, dest)
            os.remove(part + ".json")
            digest = hashes.sha256.hexdigest()
            write_sha256_record(dest, digest)
            return digest
        except PermanentError as e:
            raise DownloadFailed(str(e), status=e.status) from None
        except TransientError as e:
            last_error = e
            if isinstance(e, RangeNotSatisfiable):
                for stale in (part, part + ".json"):
                    if os.path.exists(stale):
                        os.remove(stale)
            if isinstance(e, ChecksumMismatch):
                checksum_failures += 1
                if checksum_failures > policy.checksum_retries:
                    raise DownloadFailed(f"{e} after {checksum_failures} downloads") from None
            elif hashes.size > before:
                failures = 0  # progress was made: a flaky connection, not a dead server
            else:
                failures += 1
                if failures > policy.retries:
                    raise DownloadFailed(f"{last_error} (gave up after {failures} attempts)") from None
            wait = min(policy.backoff_s * (2 ** max(failures - 1, 0)), policy.backoff_max_s)
            get_logger().warning("%s", mask_secrets(f"{name}: {e}; retrying in {wait:.1f}s"))
            time.sleep(wait)
