"""The named checkpoints and files `resolve()` knows, with what each one is; apps register theirs.

A URL in the catalog is either absolute or relative to the base of a registered host: the core knows
EasyNLP's modelzoo (override with EASYRETRIEVAL_MODELZOO_URL, e.g. for a mirror or another region) and the
HF hub; an app registers other hosts (`register_host`) and its entries (`register`) when it is imported.
An entry on the HF hub names a repository and its files, each with its sha256 (checked after download).
Sizes on disk are approximate (for display only).

A checkpoint entry says what it is in `details` ((key, value) pairs the app defines, e.g. a model size and
the image size it was trained at); the app reads them to set its parameters from `pretrained=NAME`, and
`easyretrieval models` shows them as columns.
"""
import dataclasses
import os
from typing import Dict, Optional, Tuple

HUB_PREFIX = "hf://"

MODELZOO_URL_ENV = "EASYRETRIEVAL_MODELZOO_URL"
DEFAULT_MODELZOO_URL = "http://atp-modelzoo-sh.oss-cn-shanghai.aliyuncs.com/release/easynlp_modelzoo/"
MODELZOO, HUGGINGFACE = "modelzoo", "huggingface"

# host -> (environment variable that overrides its base URL, default base URL)
HOSTS: Dict[str, Tuple[str, str]] = {MODELZOO: (MODELZOO_URL_ENV, DEFAULT_MODELZOO_URL)}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    path: str  # relative to the base of `host`; for HUGGINGFACE the repository id
    host: str  # a registered host (MODELZOO, ...) or HUGGINGFACE
    kind: str  # "checkpoint" or "tokenizer"
    approx_size: str  # what to expect on disk, e.g. "~0.9 GB"
    description: str
    details: Tuple[Tuple[str, object], ...] = ()  # what the entry is, as the app that registers it defines it
    files: Tuple[Tuple[str, str], ...] = ()  # HUGGINGFACE: (file name, sha256) of each file to fetch

    @property
    def url(self):
        if self.host == HUGGINGFACE:
            return f"{HUB_PREFIX}{self.path}"
        return base_url(self.host) + self.path

    def detail(self, key, default=None):
        return dict(self.details).get(key, default)


def register_host(name: str, env_var: str, default_url: str) -> None:
    """A base URL entries may be relative to, overridable by `env_var` (e.g. a mirror)."""
    if name in HOSTS and HOSTS[name] != (env_var, default_url):
        raise ValueError(f"catalog host '{name}' is already registered as {HOSTS[name]}")
    HOSTS[name] = (env_var, default_url)


def base_url(host):
    if host not in HOSTS:
        raise ValueError(f"unknown catalog host {host!r}")
    env_var, default = HOSTS[host]
    base = os.environ.get(env_var) or default
    return base if base.endswith("/") else base + "/"


def register(*entries: ModelEntry) -> None:
    """Add entries to the catalog; a name registered with other contents is an error."""
    for entry in entries:
        if entry.host != HUGGINGFACE and entry.host not in HOSTS:
            raise ValueError(f"catalog entry '{entry.name}': unknown host {entry.host!r} (register_host first)")
        if entry.name in CATALOG and CATALOG[entry.name] != entry:
            raise ValueError(f"catalog entry '{entry.name}' is already registered as {CATALOG[entry.name]!r}")
        CATALOG[entry.name] = entry


CATALOG: Dict[str, ModelEntry] = {}
register(
    # bert-base-uncased's vocab.txt from the HF hub: sha256 of the file (its git blob sha1 on the hub is
    # fb140275c155a9c7c5a3b3e0e77a9e839594a938, the same bytes as the vocab of sentence-transformers' MiniLM).
    ModelEntry("bert-base-uncased", "google-bert/bert-base-uncased", HUGGINGFACE, "tokenizer", "~0.2 MB",
               "BERT base uncased WordPiece vocab (HF hub google-bert/bert-base-uncased, sha256-checked)",
               files=(("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),)),
    # UNVERIFIED path: EasyNLP maps names to tgz files through modelzoo_alibaba.json, which we could not read.
    # EasyNLP unpacks this model to ~/.easynlp/modelzoo/public/bert-base-uncased and hosts other public files
    # under public/, so public/bert-base-uncased.tgz is the likely location. Override the base if needed.
    ModelEntry("easynlp_bert-base-uncased", "public/bert-base-uncased.tgz", MODELZOO, "tokenizer", "~0.4 GB",
               "BERT base uncased (tokenizer vocab + config) as EasyNLP hosts it, unpacked to a folder"),
)


def get_entry(name) -> Optional[ModelEntry]:
    return CATALOG.get(name)


def names():
    return sorted(CATALOG)
