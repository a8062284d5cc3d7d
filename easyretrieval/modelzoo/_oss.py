"""OSS access through oss2: credentials, endpoints, one lazily created Bucket per (process, bucket).

Credentials come from the environment (OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, optional
OSS_SECURITY_TOKEN, OSS_ENDPOINT) or else from the ossutil config file; with none, access is anonymous
(public buckets). An endpoint that is an IP or localhost is addressed path-style (http://IP:PORT/bucket/key).
"""
import os
import re
import urllib.parse

from easyretrieval.errors import UserError
from easyretrieval.secrets import read_ossutil_config

OSS_ENDPOINT_ENV = "OSS_ENDPOINT"
DEFAULT_ENDPOINT = "https://oss-cn-shanghai.aliyuncs.com"
# https://BUCKET.oss-REGION[-internal].aliyuncs.com/KEY
_OSS_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9-]{1,61}[a-z0-9])\.(?P<endpoint>oss-[a-z0-9-]+\.aliyuncs\.com)$")

_BUCKETS = {}  # (pid, endpoint, bucket, credentials fingerprint) -> oss2.Bucket


def parse_oss_url(url, allow_empty_key=False):
    """'oss://bucket/key' -> (bucket, key, endpoint or None)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "oss" or not parsed.netloc:
        raise UserError(f"'{url}' is not an oss://bucket/key URL")
    bucket, _, endpoint = parsed.netloc.partition(".")  # oss://bucket.endpoint/key is accepted too
    key = parsed.path.lstrip("/")
    if not key and not allow_empty_key:
        raise UserError(f"'{url}' names a bucket but no object key (expected oss://bucket/path/to/file)")
    return bucket, key, (("https://" + endpoint) if endpoint else None)


def parse_oss_http_url(url):
    """(bucket, key, endpoint) for https://BUCKET.oss-REGION.aliyuncs.com/KEY, else None."""
    parsed = urllib.parse.urlparse(url)
    match = _OSS_HOST.match(parsed.hostname or "")
    if parsed.scheme not in ("http", "https") or match is None or parsed.query:
        return None
    key = urllib.parse.unquote(parsed.path.lstrip("/"))
    return match["bucket"], key, f"{parsed.scheme}://{match['endpoint']}"


def credentials():
    """(access_key_id, access_key_secret, security_token, endpoint) from the env or ossutil config."""
    key_id = os.environ.get("OSS_ACCESS_KEY_ID", "").strip()
    secret = os.environ.get("OSS_ACCESS_KEY_SECRET", "").strip()
    token = os.environ.get("OSS_SECURITY_TOKEN", "").strip()
    endpoint = os.environ.get(OSS_ENDPOINT_ENV, "").strip()
    if not (key_id and secret):
        config = read_ossutil_config()
        key_id, secret = config.get("accesskeyid", ""), config.get("accesskeysecret", "")
        token = config.get("ststoken", "")
        endpoint = endpoint or config.get("endpoint", "")
    if endpoint and "://" not in endpoint:
        endpoint = "https://" + endpoint
    return key_id, secret, token, endpoint


def has_credentials():
    key_id, secret, _, _ = credentials()
    return bool(key_id and secret)


def get_bucket(bucket_name, endpoint=None):
    """The oss2.Bucket for `bucket_name` in this process (created on first use; DataLoader-worker safe)."""
    import oss2  # imported lazily: only OSS users pay for it

    key_id, secret, token, env_endpoint = credentials()
    # An endpoint written in the URL wins; oss://bucket/key uses OSS_ENDPOINT (or the ossutil config).
    endpoint = endpoint or env_endpoint or DEFAULT_ENDPOINT
    cache_key = (os.getpid(), endpoint, bucket_name, hash((key_id, secret, token)))
    bucket = _BUCKETS.get(cache_key)
    if bucket is None:
        if key_id and secret:
            auth = oss2.StsAuth(key_id, secret, token) if token else oss2.Auth(key_id, secret)
        else:
            auth = oss2.AnonymousAuth()
        bucket = oss2.Bucket(auth, endpoint, bucket_name, connect_timeout=30, enable_crc=False)
        _BUCKETS[cache_key] = bucket
    return bucket
