"""A small file-system layer for datasets: local paths and oss://bucket/key, same calls for both.

    read_bytes(path) -> bytes      read_text(path) -> str     open_text(path) -> text file object
    exists(path) -> bool           listdir(path) -> [names]   join(root, rel) -> path

OSS goes through oss2 with one Bucket per (process, bucket), created on first use (so each DataLoader
worker gets its own); transient errors (connection drops, 5xx, 429) are retried with backoff; a body whose
crc64ecma does not match the server's is read again. Missing objects raise FileNotFoundError, refusals
PermissionError, like local files. Messages never carry credentials.
"""
import io
import os
import posixpath
import time

from easyretrieval.secrets import mask_secrets

OSS_PREFIX = "oss://"
RETRIES = 4
BACKOFF_S = 0.5


def is_oss(path):
    return str(path).startswith(OSS_PREFIX)


def join(root, rel):
    """`rel` under `root` (an absolute `rel` or URL is returned unchanged)."""
    rel = str(rel)
    if "://" in rel or os.path.isabs(rel):
        return rel
    if is_oss(root):
        return posixpath.join(str(root), rel)
    return os.path.join(root, rel)


def _oss_target(path, allow_empty_key=False):
    from easyretrieval.modelzoo._oss import get_bucket, parse_oss_url

    bucket_name, key, endpoint = parse_oss_url(path, allow_empty_key)
    return get_bucket(bucket_name, endpoint), key


def _with_retries(path, operation):
    """Run `operation()` (an oss2 call), retrying transient failures; map the rest to OSError types."""
    import oss2

    for attempt in range(RETRIES + 1):
        try:
            return operation()
        except oss2.exceptions.OssError as e:
            status = e.status
            if status == 404:
                raise FileNotFoundError(mask_secrets(f"{path}: not found ({e.code or 'NoSuchKey'})")) from None
            if status in (401, 403):
                raise PermissionError(mask_secrets(f"{path}: access denied ({e.code}); check OSS_ACCESS_KEY_ID/"
                                                   f"OSS_ACCESS_KEY_SECRET or the ossutil config")) from None
            transient = status == -2 or status in (408, 429) or status >= 500
            message = f"{path}: OSS error {status} {e.code or ''}".strip()
        except (ConnectionError, TimeoutError, _CorruptRead) as e:
            transient, message = True, f"{path}: {type(e).__name__}: {e}"
        except Exception as e:  # requests/urllib3 errors that oss2 lets through while reading a body
            if not type(e).__module__.startswith(("requests", "urllib3")):
                raise
            transient, message = True, f"{path}: {type(e).__name__}"
        if not transient or attempt == RETRIES:
            raise OSError(mask_secrets(message + (f" (after {attempt + 1} attempts)" if transient else ""))) from None
        time.sleep(BACKOFF_S * 2 ** attempt)


class _CorruptRead(Exception):
    pass


def _read_oss_object(bucket, key):
    from oss2.utils import Crc64

    result = bucket.get_object(key)
    data = result.read()
    expected = result.headers.get("x-oss-hash-crc64ecma")
    if expected is not None:
        crc = Crc64()
        crc.update(data)
        if crc.crc != int(expected):
            raise _CorruptRead(f"crc64ecma mismatch ({len(data)} bytes read)")
    length = result.headers.get("Content-Length")
    if length is not None and int(length) != len(data):
        raise _CorruptRead(f"short read ({len(data)} of {length} bytes)")
    return data


def read_bytes(path):
    if is_oss(path):
        bucket, key = _oss_target(path)
        return _with_retries(path, lambda: _read_oss_object(bucket, key))
    with open(path, "rb") as f:
        return f.read()


def read_text(path, encoding="utf-8"):
    if is_oss(path):
        return read_bytes(path).decode(encoding)
    with open(path, encoding=encoding) as f:
        return f.read()


def open_text(path, encoding="utf-8"):
    """A text file object (read mode); OSS objects are read whole into memory."""
    if is_oss(path):
        return io.StringIO(read_text(path, encoding))
    return open(path, encoding=encoding)


def exists(path):
    """True for an existing file or folder; for OSS, an object or a non-empty prefix."""
    if not is_oss(path):
        return os.path.exists(path)
    bucket, key = _oss_target(path, allow_empty_key=True)

    def probe():
        if not key.endswith("/") and bucket.object_exists(key):
            return True
        listing = bucket.list_objects(prefix=key.rstrip("/") + "/", max_keys=1)
        return bool(listing.object_list or listing.prefix_list)

    return _with_retries(path, probe)


def listdir(path):
    """Names directly under `path` (sorted; folders of OSS prefixes without a trailing '/')."""
    if not is_oss(path):
        return sorted(os.listdir(path))
    import oss2

    bucket, key = _oss_target(path, allow_empty_key=True)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""

    def list_all():
        names = set()
        for info in oss2.ObjectIterator(bucket, prefix=prefix, delimiter="/"):
            name = info.key[len(prefix):].rstrip("/")
            if name:
                names.add(name)
        return sorted(names)

    names = _with_retries(path, list_all)
    if not names and prefix and not _with_retries(path, lambda: bucket.object_exists(prefix)):
        raise FileNotFoundError(mask_secrets(f"{path}: no such OSS prefix"))
    return names


def write_dir(dest, write):
    """Fill a new local folder `dest` through `write(tmp)` and put it in place whole.

    `write` fills a temporary sibling folder; that folder then replaces `dest` (an older `dest` is moved
    aside first and removed after), so readers see the old folder or the new one, never a half-written
    one. A crash between the two renames leaves the old folder as `dest.old-*`: the next write puts it
    back first, so nothing saved is lost. Returns `dest`.
    """
    import shutil

    dest = os.path.abspath(dest)
    parent, base = os.path.split(dest)
    os.makedirs(parent, exist_ok=True)
    for name in sorted(os.listdir(parent)):  # left by a writer that was killed
        if name.startswith(base + ".old-") and not os.path.exists(dest):
            os.rename(os.path.join(parent, name), dest)
        elif name.startswith((base + ".tmp-", base + ".old-")):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    tmp, old = f"{dest}.tmp-{os.getpid()}", f"{dest}.old-{os.getpid()}"
    os.makedirs(tmp)
    try:
        write(tmp)
        if os.path.isdir(dest):
            os.rename(dest, old)
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return dest
