"""Where bytes come from: plain HTTP(S) (urllib) and OSS (oss2), both able to start at a byte offset.

A source's `open(start, if_range)` returns a `Fetch`: the offset its body really starts at (0 when the
server ignored the Range), the object's validators (`RemoteInfo`) and an iterator of body chunks.
Failures are classified: `TransientError` (retry: 5xx, 429, dropped or timed-out connections) or
`PermanentError` (tell the user: 401/403/404, bad URL).
"""
import base64
import dataclasses
import http.client
import re
import socket
import urllib.error
import urllib.request
from typing import Iterator, Optional

CHUNK = 1 << 20
HTTP_TIMEOUT_S = 60
_USER_AGENT = "easyretrieval-modelzoo/0.1"
_HEX_MD5 = re.compile(r'^"?([0-9A-Fa-f]{32})"?$')
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class TransientError(Exception):
    """A failure worth retrying (the download resumes from what it has)."""


class PermanentError(Exception):
    """A failure retrying cannot fix (missing object, no permission)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class RangeNotSatisfiable(TransientError):
    """The partial file is not a prefix the server can continue; restart from zero."""


@dataclasses.dataclass
class RemoteInfo:
    """What the server says about the whole object (None where it said nothing)."""

    size: Optional[int] = None
    etag: Optional[str] = None
    crc64: Optional[int] = None  # x-oss-hash-crc64ecma, of the whole object
    md5_b64: Optional[str] = None  # base64 MD5 of the whole object (Content-MD5, or an OSS simple-upload ETag)

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Fetch:
    start: int
    info: RemoteInfo
    chunks: Iterator[bytes]
    close: callable


def _info_from_headers(headers, status, body_length):
    """RemoteInfo from response headers; `body_length` is Content-Length of this response."""
    size = None
    start = 0
    if status == 206:
        match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
        if match is None:
            raise TransientError(f"206 response without a valid Content-Range: {headers.get('Content-Range')!r}")
        start = int(match.group(1))
        size = int(match.group(3)) if match.group(3) != "*" else None
    elif body_length is not None:
        size = body_length
    crc = headers.get("x-oss-hash-crc64ecma")
    etag = headers.get("ETag")
    md5_b64 = headers.get("Content-MD5") if status == 200 else None
    is_oss = headers.get("x-oss-request-id") is not None
    if md5_b64 is None and is_oss and etag and _HEX_MD5.match(etag):
        # OSS ETags of simple uploads are the object's MD5 (multipart ETags contain a '-' and do not match).
        md5_b64 = base64.b64encode(bytes.fromhex(_HEX_MD5.match(etag).group(1))).decode()
    return start, RemoteInfo(size=size, etag=etag, crc64=int(crc) if crc else None, md5_b64=md5_b64)


class HttpSource:
    def __init__(self, url, timeout=HTTP_TIMEOUT_S):
        self.url = url
        self.timeout = timeout

    def describe(self):
        return self.url

    def open(self, start=0, if_range=None):
        headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        if start > 0:
            headers["Range"] = f"bytes={start}-"
            if if_range:
                headers["If-Range"] = if_range
        request = urllib.request.Request(self.url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416:
                raise RangeNotSatisfiable(f"HTTP 416 for range starting at {start}") from None
            if e.code in (408, 425, 429) or e.code >= 500:
                raise TransientError(f"HTTP {e.code} {e.reason}") from None
            raise PermanentError(f"HTTP {e.code} {e.reason}", status=e.code) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, socket.gaierror):
                raise PermanentError(f"cannot resolve host ({reason})") from None
            raise TransientError(f"connection failed: {reason}") from None
        length = response.headers.get("Content-Length")
        body_start, info = _info_from_headers(response.headers, response.status, int(length) if length else None)

        def chunks():
            try:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        return
                    yield block
            except (http.client.HTTPException, OSError) as e:
                raise TransientError(f"connection dropped: {type(e).__name__}: {e}") from None

        return Fetch(start=body_start, info=info, chunks=chunks(), close=response.close)


class OssSource:
    def __init__(self, bucket_name, key, endpoint=None):
        self.bucket_name = bucket_name
        self.key = key
        self.endpoint = endpoint

    def describe(self):
        return f"oss://{self.bucket_name}/{self.key}"

    def open(self, start=0, if_range=None):
        import oss2
        import requests

        from easyretrieval.modelzoo._oss import get_bucket

        bucket = get_bucket(self.bucket_name, self.endpoint)
        headers = {"If-Range": if_range} if (start > 0 and if_range) else None
        try:
            result = bucket.get_object(self.key, byte_range=(start, None) if start > 0 else None, headers=headers)
        except oss2.exceptions.OssError as e:
            if e.status == 416:
                raise RangeNotSatisfiable(f"OSS 416 for range starting at {start}") from None
            if e.status == -2:  # oss2 RequestError: the connection failed
                raise TransientError(f"OSS connection failed: {type(e).__name__}") from None
            if e.status in (408, 429) or e.status >= 500:
                raise TransientError(f"OSS {e.status} {e.code}") from None
            raise PermanentError(f"OSS {e.status} {e.code}: {e.message}", status=e.status) from None
        except (requests.exceptions.RequestException, OSError) as e:
            raise TransientError(f"OSS connection failed: {type(e).__name__}") from None
        resp_headers = result.resp.headers
        length = resp_headers.get("Content-Length")
        body_start, info = _info_from_headers(resp_headers, result.status, int(length) if length else None)

        def chunks():
            try:
                while True:
                    block = result.read(CHUNK)
                    if not block:
                        return
                    yield block
            except (oss2.exceptions.RequestError, requests.exceptions.RequestException, http.client.HTTPException,
                    OSError) as e:
                raise TransientError(f"OSS connection dropped: {type(e).__name__}") from None
            except Exception as e:  # urllib3 protocol errors surface under several names across versions
                if type(e).__module__.startswith(("urllib3", "requests")):
                    raise TransientError(f"OSS connection dropped: {type(e).__name__}") from None
                raise

        return Fetch(start=body_start, info=info, chunks=chunks(), close=result.resp.response.close)
