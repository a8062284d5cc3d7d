"""Servers on 127.0.0.1 for the modelzoo / fileio tests and benchmarks/download_speed.py.

FaultyHttpServer: a plain HTTP file server (GET, HEAD, Range, If-Range) whose next responses for a path can
be made to fail: 'drop' (connection closed mid-body), 'short' (body ends a few bytes early), '500', '503',
'corrupt' (one byte flipped, checksum headers still those of the real file), 'slow' (body trickles out),
'403echo' (a 403 whose message repeats the request's Authorization header).
OssServer: an OSS-compatible endpoint (path-style /bucket/key) answering what oss2 sends: GET object, HEAD,
Range, ListObjects; it checks oss2's V1 `Authorization: OSS id:signature` by recomputing the HMAC-SHA1 with
the test's secret, so a wrong key or a broken signature is refused with 403 like real OSS.
Both count requests so tests can assert how many full downloads happened.
"""
import contextlib
import base64
import collections
import email.utils
import hashlib
import hmac
import http.server
import os
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

from oss2.utils import Crc64

TEST_KEY_ID = "LTAI5tTestKeyId0001"
TEST_SECRET = "t3st-Secret-VALUE-9f8e7d6c5b4a"

# Query parameters that are part of the OSS V1 string to sign (a subset of oss2's list is enough here).
_SUBRESOURCES = {"acl", "uploads", "location", "cors", "logging", "website", "referer", "lifecycle", "delete",
                 "append", "tagging", "objectMeta", "uploadId", "partNumber", "security-token", "position",
                 "response-content-type", "response-content-disposition", "symlink", "restore", "versionId"}


def crc64(data):
    c = Crc64()
    c.update(data)
    return c.crc


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_HEAD(self):
        self.server.owner.handle(self, head=True)

    def do_GET(self):
        self.server.owner.handle(self, head=False)


class _BaseServer:
    chunk = 64 * 1024

    def __init__(self):
        self.files = {}  # path -> bytes
        self.faults = collections.defaultdict(list)  # path -> faults for the next requests, in order
        self.requests = []  # (method, path, range header or None)
        self.lock = threading.Lock()
        self.slow_delay_s = 0.02
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def inject(self, path, *faults):
        with self.lock:
            self.faults[path].extend(faults)

    def full_gets(self, path):
        """GETs of `path` that asked for the body from byte 0 (a download starting over)."""
        return sum(1 for m, p, r in self.requests if m == "GET" and p == path and not r)

    def gets(self, path):
        return sum(1 for m, p, _ in self.requests if m == "GET" and p == path)

    def _next_fault(self, path):
        with self.lock:
            return self.faults[path].pop(0) if self.faults[path] else None

    def checksum_headers(self, data):
        return {}

    def send_object(self, handler, path, data, head, extra_headers=()):
        """Serve `data` with Range / If-Range support and the injected fault for `path`, if any."""
        rng = handler.headers.get("Range")
        with self.lock:
            self.requests.append((handler.command, path, rng))
        fault = self._next_fault(path) if not head else None
        if fault in ("500", "503"):
            return self.send_error_body(handler, int(fault), "InternalError", "injected failure")
        if fault == "403echo":  # like a proxy that echoes the signed request in its error text
            return self.send_error_body(handler, 403, "AccessDenied", f"denied {handler.path} with Authorization: "
                                        f"{handler.headers.get('Authorization')}")
        etag = '"' + hashlib.md5(data).hexdigest().upper() + '"'
        start = 0
        if rng and (handler.headers.get("If-Range") in (None, etag)):
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                return self.send_error_body(handler, 416, "InvalidRange", "range not satisfiable")
        body = data[start:]
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("ETag", etag)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Last-Modified", email.utils.formatdate(usegmt=True))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        for key, value in list(self.checksum_headers(data).items()) + list(extra_headers):
            if key == "Content-MD5" and start:
                continue
            handler.send_header(key, value)
        handler.end_headers()
        if head:
            return
        if fault == "corrupt":
            body = bytearray(body)
            body[len(body) // 2] ^= 0xFF
        if fault == "drop":
            body = body[: len(body) // 2]
        elif fault == "short":
            body = body[: max(len(body) - 7, 0)]
        self._write_body(handler, bytes(body), slow=(fault == "slow"))
        if fault in ("drop", "short"):
            handler.close_connection = True
            handler.wfile.flush()
            handler.connection.shutdown(2)

    def _write_body(self, handler, body, slow):
        try:
            view = memoryview(body)
            step = self.chunk if slow else (1 << 20)
            for i in range(0, len(view), step):
                handler.wfile.write(view[i: i + step])
                if slow:
                    time.sleep(self.slow_delay_s)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def send_error_body(self, handler, status, code, message, headers=()):
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}'
                f'</Message><RequestId>5C0000000000000000000000</RequestId></Error>').encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("x-oss-request-id", "5C0000000000000000000000")
        for key, value in headers:
            handler.send_header(key, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)


class FaultyHttpServer(_BaseServer):
    """Plain HTTP. `checksums` picks the headers sent: () none, or any of 'md5' (Content-MD5), 'crc64'."""

    def __init__(self, checksums=("md5",)):
        super().__init__()
        self.checksums = tuple(checksums)

    def add(self, path, data):
        self.files[path] = data
        return self.base_url + path

    def checksum_headers(self, data):
        headers = {}
        if "md5" in self.checksums:
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
        if "crc64" in self.checksums:
            headers["x-oss-hash-crc64ecma"] = str(crc64(data))
        return headers

    def handle(self, handler, head):
        path = urllib.parse.urlsplit(handler.path).path
        if path not in self.files:
            with self.lock:
                self.requests.append((handler.command, path, None))
            return self.send_error_body(handler, 404, "NotFound", f"no file {path}")
        self.send_object(handler, path, self.files[path], head)


class OssServer(_BaseServer):
    """OSS-compatible endpoint; objects under (bucket, key); buckets in `public` need no signature."""

    def __init__(self, access_key_id, access_key_secret, public=()):
        super().__init__()
        self.key_id = access_key_id
        self.secret = access_key_secret
        self.public = set(public)
        self.auth_failures = 0

    def add(self, bucket, key, data):
        self.files[(bucket, key)] = data
        return f"oss://{bucket}/{key}"

    def checksum_headers(self, data):
        return {"x-oss-hash-crc64ecma": str(crc64(data)), "x-oss-request-id": "5C0000000000000000000001",
                "x-oss-object-type": "Normal"}

    def _signature_ok(self, handler, bucket, key, query):
        auth = handler.headers.get("Authorization")
        if auth is None:
            return bucket in self.public
        if not auth.startswith("OSS ") or ":" not in auth:
            return False
        key_id, signature = auth[4:].rsplit(":", 1)
        oss_headers = sorted((k.lower(), v) for k, v in handler.headers.items() if k.lower().startswith("x-oss-"))
        canonical_headers = "".join(f"{k}:{v}\n" for k, v in oss_headers)
        subresources = sorted((k, v) for k, v in query if k in _SUBRESOURCES)
        sub = ("?" + "&".join(f"{k}={v}" if v else k for k, v in subresources)) if subresources else ""
        resource = f"/{bucket}/{key}{sub}"
        string_to_sign = "\n".join([handler.command, handler.headers.get("Content-MD5", ""),
                                    handler.headers.get("Content-Type", ""), handler.headers.get("Date", ""),
                                    canonical_headers + resource])
        expected = base64.b64encode(hmac.new(self.secret.encode(), string_to_sign.encode(), hashlib.sha1).digest())
        return key_id == self.key_id and hmac.compare_digest(expected.decode(), signature)

    def handle(self, handler, head):
        parsed = urllib.parse.urlsplit(handler.path)
        bucket, _, key = urllib.parse.unquote(parsed.path.lstrip("/")).partition("/")
        query = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
        if not self._signature_ok(handler, bucket, key, query):
            with self.lock:
                self.auth_failures += 1
                self.requests.append((handler.command, f"/{bucket}/{key}", None))
            return self.send_error_body(handler, 403, "SignatureDoesNotMatch" if handler.headers.get(
                "Authorization") else "AccessDenied", "The request signature we calculated does not match")
        if key == "" and not head:
            return self._list(handler, bucket, dict(query))
        if (bucket, key) not in self.files:
            with self.lock:
                self.requests.append((handler.command, f"/{bucket}/{key}", None))
            return self.send_error_body(handler, 404, "NoSuchKey", "The specified key does not exist.")
        self.send_object(handler, f"/{bucket}/{key}", self.files[(bucket, key)], head)

    def _list(self, handler, bucket, params):
        prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
        keys, prefixes = [], set()
        for b, k in sorted(self.files):
            if b != bucket or not k.startswith(prefix):
                continue
            rest = k[len(prefix):]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
            else:
                keys.append(k)
        contents = "".join(
            f"<Contents><Key>{escape(k)}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>\"x\"</ETag>"
            f"<Type>Normal</Type><Size>{len(self.files[(bucket, k)])}</Size><StorageClass>Standard</StorageClass>"
            f"</Contents>" for k in keys)
        common = "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in sorted(prefixes))
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>{bucket}</Name>'
                f"<Prefix>{escape(prefix)}</Prefix><Marker></Marker><MaxKeys>100</MaxKeys>"
                f"<Delimiter>{escape(delimiter)}</Delimiter><IsTruncated>false</IsTruncated>{contents}{common}"
                f"</ListBucketResult>").encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("x-oss-request-id", "5C0000000000000000000002")
        handler.end_headers()
        handler.wfile.write(body)


def resolve_in_subprocess(spec, cache_dir, result_queue):
    """multiprocessing target: resolve `spec` into `cache_dir` and report (path, sha256 of the file)."""
    os.environ["EASYRETRIEVAL_CACHE"] = cache_dir
    from easyretrieval.modelzoo import resolve

    path = resolve(spec, progress=False)
    with open(path, "rb") as f:
        result_queue.put((path, hashlib.sha256(f.read()).hexdigest()))


def payload(size, seed=0):
    """Deterministic bytes that differ everywhere (so a flipped or missing byte changes every checksum)."""
    import random

    return random.Random(seed).randbytes(size)


def files_under(root):
    for directory, _, names in os.walk(root):
        for name in names:
            yield os.path.join(directory, name)


@contextlib.contextmanager
def oss_test_endpoint(monkeypatch, tmp_path, key_id, secret):
    """An OssServer with the environment pointing oss2 at it (credentials from env only, fast retries)."""
    from easyretrieval import fileio
    from easyretrieval.modelzoo import _oss

    monkeypatch.setenv("OSS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", secret)
    monkeypatch.delenv("OSS_SECURITY_TOKEN", raising=False)
    monkeypatch.setenv("OSSUTIL_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setattr(fileio, "BACKOFF_S", 0.01)
    monkeypatch.setattr(_oss, "_BUCKETS", {})  # Buckets of earlier tests point at servers now gone
    with OssServer(key_id, secret) as server:
        monkeypatch.setenv("OSS_ENDPOINT", server.base_url)
        yield server


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer(_BaseServer):
    """An HF-hub endpoint (HF_ENDPOINT) on 127.0.0.1 answering what huggingface_hub's hf_hub_download asks:
    HEAD/GET /ORG/NAME/resolve/REVISION/FILE with X-Repo-Commit and the file's hash as the hub gives it
    (ETag = git blob sha1; for LFS-stored files (*.safetensors, *.bin) X-Linked-Etag = sha256 and
    X-Linked-Size); 404s carry X-Error-Code EntryNotFound / RepoNotFound / RevisionNotFound as the hub's do.
    `corrupt_next(repo, file)` flips one byte of the next body of that file."""

    LFS_SUFFIXES = (".safetensors", ".bin")

    def __init__(self):
        super().__init__()
        self.repos = {}  # repo_id -> (commit sha, {file name: bytes})
        self.corrupt = set()

    def add_repo(self, repo_id, files):
        digest = hashlib.sha1()
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        self.repos[repo_id] = (digest.hexdigest(), dict(files))
        return self.repos[repo_id][0]

    def add_folder(self, repo_id, folder):
        files = {}
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    files[name] = handle.read()
        return self.add_repo(repo_id, files)

    def corrupt_next(self, repo_id, name):
        self.corrupt.add((repo_id, name))

    def _not_found(self, handler, code):
        handler.send_response(404)
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def handle(self, handler, head):
        path = urllib.parse.unquote(urllib.parse.urlsplit(handler.path).path)
        with self.lock:
            self.requests.append((handler.command, path, handler.headers.get("Range")))
        parts = path.lstrip("/").split("/", 4)
        if len(parts) < 5 or parts[2] != "resolve":
            return self._not_found(handler, "RepoNotFound")
        repo_id, revision, name = f"{parts[0]}/{parts[1]}", parts[3], parts[4]
        if repo_id not in self.repos:
            return self._not_found(handler, "RepoNotFound")
        commit, files = self.repos[repo_id]
        if revision not in ("main", commit):
            return self._not_found(handler, "RevisionNotFound")
        if name not in files:
            return self._not_found(handler, "EntryNotFound")
        data = files[name]
        rng = handler.headers.get("Range")
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = data[start:]
        if not head and (repo_id, name) in self.corrupt:
            self.corrupt.discard((repo_id, name))
            body = bytearray(body)
            body[len(body) // 2] ^= 0xFF
            body = bytes(body)
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("X-Repo-Commit", commit)
        handler.send_header("ETag", f'"{git_blob_sha1(data)}"')
        if name.endswith(self.LFS_SUFFIXES):
            handler.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            handler.send_header("X-Linked-Size", str(len(data)))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not head:
            self._write_body(handler, body, slow=False)
