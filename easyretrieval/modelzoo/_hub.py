"""Files of HF hub repositories through huggingface_hub, checked against the hash the hub names them by.

Downloads go through `huggingface_hub.hf_hub_download`: its cache (HF_HUB_CACHE, or HF_HOME/hub, default
~/.cache/huggingface/hub), HF_ENDPOINT (a mirror, or a local endpoint in tests) and HF_TOKEN; HF_HUB_OFFLINE=1
or EASYRETRIEVAL_OFFLINE=1 answer from that cache only. The environment is read at each call (not when
huggingface_hub was imported). The hub names each stored file by its hash (sha256 for LFS files, the git
blob sha1 for others); after a download the file is hashed and compared with that name, once per blob
(a marker in EASYRETRIEVAL_CACHE/huggingface-verified/ records it).
"""
import hashlib
import os
import re
from typing import Optional, Sequence

from easyretrieval.errors import UserError

HUB_PREFIX = "hf://"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# A spec of this form ending like a file is a path relative to the modelzoo, not a hub repository.
_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".json", ".txt", ".tgz", ".gz", ".tar", ".zip", ".npz",
                  ".npy", ".jpg", ".jpeg", ".png", ".yaml", ".yml", ".ckpt")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def hub_repo_id(spec: str) -> Optional[str]:
    """The repository id of `hf://org/name` or of a bare `org/name` (not ending like a file), else None."""
    if spec.startswith(HUB_PREFIX):
        repo = spec[len(HUB_PREFIX):].strip("/")
        if not _REPO_ID.match(repo):
            raise UserError(f"'{spec}' is not hf://ORG/NAME")
        return repo
    if _REPO_ID.match(spec) and not spec.lower().endswith(_FILE_SUFFIXES):
        return spec
    return None


def _truthy(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    return _truthy("HF_HUB_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE") or _truthy("EASYRETRIEVAL_OFFLINE")


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


def _git_blob_sha1(path):
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_blob(path, what):
    """Hash the cached blob behind `path` and compare it with the name the hub gave it. Returns True when
    checked, False when the cache stores no hash name (copies instead of links)."""
    from easyretrieval.modelzoo._cache import default_cache_dir

    blob = os.path.realpath(path)
    name = os.path.basename(blob)
    if not (_SHA256.match(name) or _SHA1.match(name)):
        return False
    marker = os.path.join(default_cache_dir(), "huggingface-verified", name)
    if os.path.isfile(marker):
        return True
    actual = file_sha256(blob) if _SHA256.match(name) else _git_blob_sha1(blob)
    if actual != name:
        os.remove(blob)  # a corrupt blob must not be found again; the next call downloads it anew
        raise UserError(f"{what}: the downloaded file's hash is {actual}, the hub's is {name}; it was removed, "
                        "run again to download it anew")
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    open(marker, "w").close()
    return True


def hub_file(repo_id: str, filename: str, revision: Optional[str] = None, required: bool = True) -> Optional[str]:
    """The local path of `filename` in hub repository `repo_id` (downloaded once, verified), or None when
    the file is not there and not `required`. Raises UserError with what to do otherwise."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError, GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = hub_offline()
    what = f"{repo_id}/{filename}" + (f"@{revision}" if revision else "")
    try:
        path = hf_hub_download(repo_id, filename, revision=revision, cache_dir=hub_cache_dir(),
                               endpoint=hub_endpoint(), local_files_only=offline)
    except LocalEntryNotFoundError:
        if not required:
            return None
        if offline:
            raise UserError(f"hub file {what} is not in the HF cache {hub_cache_dir()} and downloads are off "
                            "(HF_HUB_OFFLINE / EASYRETRIEVAL_OFFLINE): fetch it once online, or unset them"
                            ) from None
        raise UserError(f"cannot reach the HF hub at {hub_endpoint()} for {what}, and it is not in the cache "
                        f"{hub_cache_dir()}: check the network, or set HF_ENDPOINT to a mirror") from None
    except GatedRepoError:
        raise UserError(f"hub repository {repo_id} is gated: accept its terms on the hub and set HF_TOKEN"
                        ) from None
    except RepositoryNotFoundError:
        raise UserError(f"hub repository {repo_id} not found at {hub_endpoint()} (or private: set HF_TOKEN)"
                        ) from None
    except RevisionNotFoundError:
        raise UserError(f"hub repository {repo_id} has no revision {revision}") from None
    except EntryNotFoundError:
        if not required:
            return None
        raise UserError(f"hub repository {repo_id} has no file {filename}") from None
    except HfHubHTTPError as error:
        raise UserError(f"HF hub error for {what}: {str(error).splitlines()[0]}") from None
    verify_blob(path, what)
    return path


def hub_files(repo_id: str, filenames: Sequence[str], revision: Optional[str] = None) -> str:
    """Download every one of `filenames` (all required) and return the snapshot folder holding them."""
    paths = [hub_file(repo_id, name, revision) for name in filenames]
    return os.path.dirname(paths[0])
