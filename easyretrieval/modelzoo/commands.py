"""`easyretrieval models`: list the catalog and what is cached; `easyretrieval models fetch SPEC...` pre-fetches.

    easyretrieval models [--cache_dir DIR] [--json]
    easyretrieval models fetch blip_base_retrieval_flickr oss://bucket/ann.json ...
"""
import argparse
import json
import os

from easyretrieval.errors import UserError
from easyretrieval.modelzoo import _cache, catalog
from easyretrieval.modelzoo.resolver import find_cached_entry, resolve
from easyretrieval.registry import register_command


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(f"models: {message} (see easyretrieval models --help)")


def _parser():
    p = _Parser(prog="easyretrieval models", description="List the model zoo and the local cache, or fetch entries.")
    p.add_argument("action", nargs="?", choices=("list", "fetch"), default="list",
                   help="list the catalog (default) or fetch names/URLs into the cache")
    p.add_argument("specs", nargs="*", help="for fetch: names, URLs or oss:// paths")
    p.add_argument("--cache_dir", default=None, help=f"default: ${_cache.CACHE_ENV} or ~/.cache/easyretrieval")
    p.add_argument("--json", action="store_true", help="print the catalog as JSON")
    return p


def catalog_rows(cache_dir):
    rows = []
    for name in catalog.names():
        entry = catalog.CATALOG[name]
        rows.append({"name": name, "kind": entry.kind, "vit": entry.vit or "-",
                     "image_size": entry.image_size or "-", "embed_dim": entry.embed_dim or "-",
                     "finetuned_on": entry.finetuned_on or "-", "size": entry.approx_size,
                     "cached": find_cached_entry(entry, cache_dir), "url": entry.url,
                     "description": entry.description})
    return rows


@register_command("models", help="list the modelzoo catalog and what is cached; `models fetch NAME...` "
                                 "pre-fetches")
def models_command(argv):
    args = _parser().parse_args(argv)
    cache_dir = os.path.abspath(os.path.expanduser(args.cache_dir or _cache.default_cache_dir()))
    if args.action == "fetch":
        if not args.specs:
            raise UserError("models fetch: give at least one name, URL or path")
        for spec in args.specs:
            print(f"{spec}\t{resolve(spec, cache_dir=cache_dir)}", flush=True)
        return 0
    rows = catalog_rows(cache_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("NAME", "KIND", "VIT", "IMAGE_SIZE", "EMBED_DIM", "FINETUNED_ON", "SIZE", "CACHED")
    table = [header] + [(r["name"], r["kind"], r["vit"], r["image_size"], r["embed_dim"], r["finetuned_on"],
                         r["size"], r["cached"] or "-") for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + str(row[-1]))
    print(f"\ncache: {cache_dir}  (set {_cache.CACHE_ENV} to move it; "
          f"EASYRETRIEVAL_OFFLINE=1 to use only what is here)")
    return 0
