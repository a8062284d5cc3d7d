"""`resolve(spec) -> local path` for catalog names, modelzoo-relative paths, http(s), oss://, HF hub ids and
local paths.

Remote files land in the cache (EASYRETRIEVAL_CACHE, default ~/.cache/easyretrieval), fetched by exactly one
process per node (flock) while the others wait, verified, renamed atomically; archives are unpacked to a
folder. EASYRETRIEVAL_OFFLINE=1 (or local_files_only=True) answers from the cache only. Catalog entries on
the HF hub and hub ids (`org/name`, `hf://org/name`) go through huggingface_hub and its own cache
(see _hub.py); they resolve to the snapshot folder holding the files asked for.
"""
import os
import tarfile
import urllib.parse

from easyretrieval.errors import UserError, did_you_mean
from easyretrieval.modelzoo import _archive, _cache, _hub, _oss, catalog
from easyretrieval.modelzoo._download import DownloadFailed, download
from easyretrieval.modelzoo._sources import HttpSource, OssSource
from easyretrieval.secrets import mask_secrets

OFFLINE_ENV = "EASYRETRIEVAL_OFFLINE"
_LOCAL_PREFIXES = ("/", "./", "../", "~")


def is_offline():
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _error(message):
    return UserError(mask_secrets(message))


def _remote_for(spec):
    """(url, source, catalog entry or None) for a remote spec, or None when `spec` is a local path."""
    scheme = urllib.parse.urlsplit(spec).scheme.lower()
    if scheme == "oss":
        bucket, key, endpoint = _oss.parse_oss_url(spec)
        return f"oss://{bucket}/{key}", OssSource(bucket, key, endpoint), None
    if scheme in ("http", "https"):
        oss_target = _oss.parse_oss_http_url(spec)
        if oss_target is not None and _oss.has_credentials():  # private buckets need signed requests
            bucket, key, endpoint = oss_target
            return spec, OssSource(bucket, key, endpoint), None
        return spec, HttpSource(spec), None
    if scheme:
        raise _error(f"cannot resolve '{spec}': unsupported scheme '{scheme}://' (use a path, a model name, "
                     f"http(s)://, oss:// or file://)")
    entry = catalog.get_entry(spec)
    if entry is not None:
        return entry.url, HttpSource(entry.url), entry
    return None


def _local_path(spec):
    path = spec[len("file://"):] if spec.startswith("file://") else spec
    return path if os.path.exists(os.path.expanduser(path)) else None


def cached_path(url, cache_dir=None):
    """Where `url`'s file is (or would be) cached (for archives: the .tgz itself)."""
    return _cache.cache_path(url, cache_dir or _cache.default_cache_dir())


def find_cached(url, cache_dir=None):
    """The ready local path for `url` if it is cached, else None (hf://repo URLs: see `find_cached_entry`)."""
    if url.startswith(_hub.HUB_PREFIX):
        return None
    path = cached_path(url, cache_dir)
    if _archive.is_archive(path):
        folder = _archive.unpacked_dir(path)
        return _archive.content_root(folder) if os.path.isdir(folder) else None
    return path if os.path.isfile(path) else None


def find_cached_entry(entry, cache_dir=None):
    """The local path of a catalog entry if it is cached, else None."""
    if entry.host != catalog.HUGGINGFACE:
        return find_cached(entry.url, cache_dir)
    from huggingface_hub import try_to_load_from_cache

    paths = [try_to_load_from_cache(entry.path, name, cache_dir=_hub.hub_cache_dir()) for name, _ in entry.files]
    return os.path.dirname(paths[0]) if all(isinstance(p, str) for p in paths) else None


def _resolve_hub_entry(entry):
    """Download (or find) a hub-hosted catalog entry's files, each checked against its catalog sha256."""
    folder = None
    for name, expected in entry.files:
        path = _hub.hub_file(entry.path, name)
        actual = _hub.file_sha256(path)
        if actual != expected:
            raise _error(f"'{entry.name}': {entry.path}/{name} has sha256 {actual}, the catalog expects {expected}; "
                         f"the file on the hub ({_hub.hub_endpoint()}) is not the one this version was made for: "
                         f"give tokenizer=/path/to/vocab.txt or {entry.name}'s EasyNLP copy")
        folder = os.path.dirname(path)
    return folder


def resolve(spec, cache_dir=None, local_files_only=None, progress=True, hub_files=None):
    """A local path for `spec`: a catalog name, a path relative to the modelzoo base, an http(s):// or
    oss:// URL (downloaded once into the cache), or a local path (returned as given once it exists).

    An HF hub id (`org/name` or `hf://org/name`) resolves to the snapshot folder holding `hub_files`
    (file names in the repository, all required); without `hub_files` it is an error (the caller knows
    which files it needs)."""
    if not isinstance(spec, str) or not spec.strip():
        raise _error(f"cannot resolve {spec!r}: expected a model name, URL or path")
    spec = spec.strip()
    if spec.startswith("file://") or spec.startswith(_LOCAL_PREFIXES) or os.path.exists(spec):
        local = _local_path(spec)
        if local is None:
            raise _error(f"'{spec}' does not exist (give an existing file or folder, a model name or a URL)")
        return local
    entry = catalog.get_entry(spec)
    if entry is not None and entry.host == catalog.HUGGINGFACE:
        return _resolve_hub_entry(entry)
    repo_id = _hub.hub_repo_id(spec) if entry is None else None
    if repo_id is not None:
        if not hub_files:
            raise _error(f"'{spec}' looks like an HF hub repository id; this parameter does not take one "
                         "(give a path, a model name or a URL)")
        return _hub.hub_files(repo_id, hub_files)
    remote = _remote_for(spec)
    if remote is None:
        if "/" in spec:  # e.g. alibaba-pai/blip/flickr30k/annotation/flickr30k_train.json
            url = catalog.base_url(catalog.MODELZOO) + spec
            remote = url, HttpSource(url), None
        else:
            raise _error(f"unknown model '{spec}'{did_you_mean(spec, catalog.names())}; known: "
                         f"{', '.join(catalog.names())} (or give a path or URL; `easyretrieval models` lists them)")
    url, source, entry = remote
    cache_dir = os.path.abspath(os.path.expanduser(cache_dir or _cache.default_cache_dir()))
    offline = is_offline() if local_files_only is None else local_files_only
    found = find_cached(url, cache_dir)
    if found is not None:
        return found
    dest = cached_path(url, cache_dir)
    if offline and not os.path.isfile(dest):  # a .tgz put there by hand is unpacked below
        raise _error(f"'{spec}' is not in the cache and downloads are off ({OFFLINE_ENV}=1 or local_files_only): "
                     f"fetch {_cache.canonical_url(url)} elsewhere and put it at {dest}"
                     + (" (the .tgz; it is unpacked on first use)" if _archive.is_archive(dest) else "")
                     + f", or unset {OFFLINE_ENV}")
    with _cache.node_lock(dest, os.path.basename(dest), quiet=not progress):
        if not os.path.isfile(dest):  # another process may have fetched it while we waited
            try:
                download(source, dest, progress=progress)
            except DownloadFailed as e:
                hint = "check the name/URL and your access rights" if e.status in (401, 403, 404, 410) else \
                    f"check the network, or use a mirror via {catalog.MODELZOO_URL_ENV}"
                raise _error(f"cannot download '{spec}' from {_cache.canonical_url(url)}: {e}; {hint}") from None
        if _archive.is_archive(dest):
            try:
                return _archive.content_root(_archive.unpack(dest))
            except (tarfile.TarError, OSError, EOFError) as e:
                raise _error(f"cannot unpack '{spec}' ({dest}): {type(e).__name__}: {e}; delete it and retry") from None
    return dest
