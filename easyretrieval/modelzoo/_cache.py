"""The download cache: where a URL's file lives, the per-file node lock, and the sha256 record.

Layout: CACHE/<host>/<first 16 hex of sha256(url)>/<file name>, with beside the file
  <file name>.sha256   "HEX  NAME" (sha256sum format), written after the file is verified,
  <file name>.part     the download in progress (resumed after a crash), <file name>.part.json its validators,
  <file name>.lock     the flock that lets exactly one process per node download.
Every component is sanitised, so no URL can place a file outside the cache directory.
"""
import contextlib
import fcntl
import hashlib
import os
import re
import time
import urllib.parse

from easyretrieval.log import get_logger

CACHE_ENV = "EASYRETRIEVAL_CACHE"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Query parameters of signed URLs: they change on every signing and must not split the cache.
_VOLATILE_QUERY_KEYS = {"ossaccesskeyid", "expires", "signature", "security-token"}


def default_cache_dir():
    return os.path.abspath(os.path.expanduser(os.environ.get(CACHE_ENV) or "~/.cache/easyretrieval"))


def _safe_component(text, fallback):
    text = _SAFE.sub("_", text).strip("._")
    return text[:120] or fallback


def canonical_url(url):
    """The URL with signature query parameters removed (the cache key)."""
    parsed = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
             if k.lower() not in _VOLATILE_QUERY_KEYS and not k.lower().startswith("x-oss-")]
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, urllib.parse.urlencode(query), ""))


def cache_path(url, cache_dir):
    """Absolute path of `url`'s file inside `cache_dir`; raises ValueError if it would escape it."""
    url = canonical_url(url)
    parsed = urllib.parse.urlsplit(url)
    host = _safe_component(parsed.netloc.split("@")[-1], "host")
    name = _safe_component(urllib.parse.unquote(parsed.path.rstrip("/").rsplit("/", 1)[-1]), "download")
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    root = os.path.realpath(cache_dir)
    path = os.path.realpath(os.path.join(root, host, digest, name))
    if os.path.commonpath([root, path]) != root:  # cannot happen after sanitising; checked all the same
        raise ValueError(f"cache path for {url!r} escapes the cache directory")
    return path


def sha256_record_path(path):
    return path + ".sha256"


def write_sha256_record(path, hex_digest):
    """Write 'HEX  NAME' beside `path` atomically."""
    record = sha256_record_path(path)
    tmp = f"{record}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{hex_digest}  {os.path.basename(path)}\n")
    os.replace(tmp, record)


def read_sha256_record(path):
    try:
        with open(sha256_record_path(path), encoding="utf-8") as f:
            return f.read().split()[0]
    except (OSError, IndexError):
        return None


@contextlib.contextmanager
def node_lock(path, what, quiet=False):
    """Hold an exclusive flock on `path`.lock; say once that we wait if another process holds it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not quiet:
                get_logger().info("waiting for another process to finish fetching %s", what)
            start = time.monotonic()
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not quiet:
                get_logger().info("%s ready after %.1fs wait", what, time.monotonic() - start)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
