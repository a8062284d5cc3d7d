"""`easyretrieval index` and `easyretrieval search`: a persistent gallery index of a BLIP model, and queries.

    easyretrieval index  --pretrained SRC --gallery G --output INDEX_DIR [--batch_size N] [--num_workers N]
                         [--append] [--kind flat|ivf|hnsw] [--store_vit] [--image_root R] [--commit_every N]
    easyretrieval search --index INDEX_DIR (--query TEXT | --queries FILE | --image FILE) [--top_k 10]
                         [--rerank K] [--report FILE.html] [--pretrained SRC]

index: G is an image folder (recursive), an oss:// prefix, or an annotation file in the official format.
A folder holding an unfinished build (killed, even with SIGKILL) resumes it; --append embeds the new images
of G into a finished index. Under torchrun every rank embeds a share. search: text -> image, or image ->
image with --image; prints one JSON line per query: {"query", "scored_by", "hits": [{"rank", "id", "path",
"score"}]}. The model defaults to the one the index records; another model is refused. Torch is imported
only when a command runs.
"""
import argparse
import json
import os
import sys

from easyretrieval.errors import UserError
from easyretrieval.registry import register_command

KINDS = ("flat", "ivf", "hnsw")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


def _index_parser():
    parser = _Parser(prog="easyretrieval index", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", required=True, help="the model: a save_pretrained folder (e.g. a run's "
                        "best/), an official .pth / .safetensors, a modelzoo name, a URL or an HF hub id")
    parser.add_argument("--gallery", required=True, help="an image folder (recursive), an oss:// prefix, or an "
                        "annotation .json in the official format (its entries' \"image\")")
    parser.add_argument("--output", required=True, help="the index folder (new, or an unfinished build to resume, "
                        "or a finished index with --append)")
    parser.add_argument("--image_root", default="", help="folder or oss:// prefix the annotation's image paths are "
                        "relative to (default: the annotation file's folder)")
    parser.add_argument("--batch_size", type=int, default=32, help="images per forward (default 32)")
    parser.add_argument("--num_workers", type=int, default=4, help="image-reading worker processes per rank "
                        "(default 4)")
    parser.add_argument("--append", action="store_true", help="add the gallery's images that a finished index "
                        "does not hold yet")
    parser.add_argument("--kind", choices=KINDS, default="flat", help="FAISS index: flat (exact inner product, "
                        "default), ivf or hnsw (approximate, for large galleries; recall@10 vs exact reported)")
    parser.add_argument("--store_vit", action="store_true", help="also store each image's ViT token embeddings "
                        "(float16) so --rerank reads no image files (ViT-B 384 px: 577 x 768 x 2 bytes = 0.85 "
                        "MiB per image)")
    parser.add_argument("--commit_every", type=int, default=512, help="images per committed shard: a killed "
                        "build loses at most this many images' work (default 512)")
    parser.add_argument("--device", default=None, help="where the model runs (default: this rank's GPU, else cpu)")
    parser.add_argument("--collective_timeout", type=float, default=86400.0, help="seconds ranks wait for each "
                        "other under torchrun (default 86400)")
    return parser


def _search_parser():
    parser = _Parser(prog="easyretrieval search", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="an index folder written by `easyretrieval index`")
    queries = parser.add_mutually_exclusive_group(required=True)
    queries.add_argument("--query", help="one query text (text -> image)")
    queries.add_argument("--queries", help="a text file, one query a line (text -> image)")
    queries.add_argument("--image", help="a query image file (image -> image, by ITC similarity)")
    parser.add_argument("--top_k", type=int, default=10, help="results per query (default 10)")
    parser.add_argument("--rerank", type=int, default=0, help="re-score the top K ITC candidates with ITM as "
                        "evaluation does (ITM positive logit + ITC similarity); K >= --top_k; text queries only")
    parser.add_argument("--report", default="", help="also write this HTML page of the results (thumbnails)")
    parser.add_argument("--pretrained", default="", help="the model (default: the one the index records; it must "
                        "be the model that built the index)")
    parser.add_argument("--device", default=None, help="where the model runs (default: GPU when there is one)")
    return parser


def _default_device(dist=None):
    import torch

    if torch.cuda.is_available():
        return f"cuda:{dist.local_rank if dist is not None else 0}"
    return "cpu"


def _check_positive(**values):
    for name, value in values.items():
        if value < 1:
            raise UserError(f"--{name} must be >= 1, got {value}")


@register_command("index", help="embed an image gallery into a persistent index (FAISS) for `easyretrieval search`")
def index_command(argv):
    args = _index_parser().parse_args(argv)
    _check_positive(batch_size=args.batch_size, commit_every=args.commit_every)
    if args.num_workers < 0:
        raise UserError(f"--num_workers must be >= 0, got {args.num_workers}")
    from appzoo.blip_retrieval.index.build import check_folder_before_model
    from appzoo.blip_retrieval.index.gallery import list_gallery
    from easyretrieval.distributed import dist_info_from_env, init_distributed

    check_folder_before_model(args.output, args.append)
    items = list_gallery(args.gallery, args.image_root)  # before any model: a wrong path fails at once
    dist = dist_info_from_env()
    if dist.distributed:
        init_distributed(dist, args.collective_timeout)
    from appzoo.blip_retrieval.index.build import BuildOptions, build_index
    from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval

    model = BlipRetrieval.from_pretrained(args.pretrained, device=args.device or _default_device(dist))
    options = BuildOptions(kind=args.kind, append=args.append, store_vit=args.store_vit, batch_size=args.batch_size,
                           num_workers=args.num_workers, commit_every=args.commit_every, progress=True)
    report = build_index(model, items, args.output, options, dist)
    if report is not None:
        print(report.summary(), flush=True)
    return 0


def _read_queries(args):
    """(texts, None) or (None, image path), checked before the model is loaded."""
    if args.image:
        if not os.path.isfile(args.image):
            raise UserError(f"--image '{args.image}' not found")
        if args.rerank:
            raise UserError("--rerank needs text queries: ITM scores an image against a text, not two images "
                            "(drop --rerank for --image)")
        return None, args.image
    if args.query is not None:
        return [args.query], None
    from appzoo.blip_retrieval.predict_inputs import read_items

    if not os.path.isfile(args.queries):
        raise UserError(f"--queries '{args.queries}' not found (a text file, one query a line)")
    items = read_items(args.queries, what="queries file")
    if items.kind != "texts":
        raise UserError(f"--queries '{args.queries}' must be a text file, one query a line (for an image query "
                        "use --image)")
    return items.values, None


@register_command("search", help="query an index: text -> image (optionally ITM re-ranked) or image -> image")
def search_command(argv):
    args = _search_parser().parse_args(argv)
    _check_positive(top_k=args.top_k)
    if args.rerank < 0 or 0 < args.rerank < args.top_k:
        raise UserError(f"--rerank {args.rerank} re-scores fewer candidates than --top_k {args.top_k} returns: give "
                        "--rerank >= --top_k (or leave it out)")
    texts, image = _read_queries(args)
    from appzoo.blip_retrieval.checks import check_report_path

    check_report_path(args.report, "--report")
    from easyretrieval.index import GalleryStore

    GalleryStore.open(args.index)  # an index at all, before loading anything heavy
    from appzoo.blip_retrieval.index.api import Index, check_texts

    index = Index.open(args.index)
    if args.pretrained:
        from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval

        model = BlipRetrieval.from_pretrained(args.pretrained, device=args.device or _default_device())
    else:
        model = index.load_model(device=args.device or _default_device())
    if texts is not None:
        check_texts(texts, model.config.max_words)
        results = index.search(model, texts, top_k=args.top_k, rerank=args.rerank)
    else:
        try:
            results = index.search_images(model, [image], top_k=args.top_k)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read --image '{image}': {type(e).__name__}: {e}") from None
    for result in results:
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
    sys.stdout.flush()
    if args.report:
        from appzoo.blip_retrieval.reports import write_search_report

        path = write_search_report(args.report, results, index)
        sys.stderr.write(f"report: {path}\n")
    return 0
