"""Building blocks every mode of the app shares: tokenizer, model, datasets, evaluator.

Each function takes the resolved parameters (and paths / ranks) and returns one object.
"""
import os

from easyretrieval.distributed import DistInfo, barrier
from easyretrieval.errors import UserError
from easyretrieval.log import get_logger

logger = get_logger()

VOCAB_FILE = "vocab.txt"  # tokenizer=build writes the vocab here, in output_dir


def vocab_candidates(config, output_dirs):
    """Where a vocab built by tokenizer=build may be: in `output_dirs` (a folder or a list: this run's, then
    the --output_dir it writes under), then beside `pretrained`."""
    output_dirs = [output_dirs] if isinstance(output_dirs, str) else list(output_dirs)
    paths = [os.path.join(d, VOCAB_FILE) for d in output_dirs]
    if config.pretrained and os.path.exists(config.pretrained):
        paths.append(os.path.join(os.path.dirname(os.path.abspath(config.pretrained)), VOCAB_FILE))
    return paths


def create_app_tokenizer(config, output_dir, dist: DistInfo, train_dataset=None, search_dirs=()):
    """BLIP's tokenizer from `tokenizer=` (modelzoo name, URL, path) or, for 'build', a WordPiece vocab
    trained on the training captions once (rank 0) and kept in output_dir so resume/evaluate reuse it
    (also looked for in `search_dirs`)."""
    from appzoo.blip_retrieval.model import build_wordpiece_vocab, create_tokenizer

    if config.tokenizer != "build":
        from easyretrieval.modelzoo import resolve

        return create_tokenizer(resolve(config.tokenizer, hub_files=("vocab.txt",)))
    for path in vocab_candidates(config, [output_dir, *search_dirs]):
        if os.path.isfile(path):
            return create_tokenizer(path)
    if train_dataset is None:
        raise UserError(
            f"tokenizer=build: no {VOCAB_FILE} in output_dir '{output_dir}' or beside pretrained=; "
            "evaluate/predict need the vocab the training run built (or tokenizer=<vocab>)"
        )
    path = os.path.join(output_dir, VOCAB_FILE)
    if dist.is_main:
        build_wordpiece_vocab([ann["caption"] for ann in train_dataset.annotation], path,
                              max_words=config.max_words)
    barrier()
    return create_tokenizer(path)


def copy_vocab(source_dir, output_dir, dist: DistInfo):
    """source_dir's vocab.txt into output_dir (rank 0) unless output_dir has one; every rank waits for it."""
    import shutil

    source, target = os.path.join(source_dir, VOCAB_FILE), os.path.join(output_dir, VOCAB_FILE)
    if dist.is_main and os.path.isfile(source) and not os.path.isfile(target):
        os.makedirs(output_dir, exist_ok=True)
        shutil.copy2(source, target + ".part")
        os.replace(target + ".part", target)
    barrier()


def create_app_model(config, tokenizer, verbose: bool):
    """BlipRetrieval from the parameters, with `pretrained=` loaded (the load report logged on rank 0)."""
    from appzoo.blip_retrieval.model import config_from_params, create_model

    model = create_model(config_from_params(config, len(tokenizer)), tokenizer)
    if config.pretrained:
        from appzoo.blip_retrieval.model.checkpoint import load_state
        from appzoo.blip_retrieval.model.sources import locate, read_weights

        source = locate(config.pretrained)
        if source.config is not None and source.config.text.vocab_size != len(tokenizer):
            raise UserError(f"tokenizer={config.tokenizer} has {len(tokenizer)} tokens; pretrained={config.pretrained} "
                            f"was trained with a {source.config.text.vocab_size}-token vocab: drop tokenizer= to "
                            "use the model's own, or give that vocab")
        report = load_state(model, read_weights(source), source=f"pretrained={config.pretrained}")
        if verbose:
            logger.info("pretrained=%s (%s): %s", config.pretrained, source.describe(), report.summary())
    return model


def eval_splits(config):
    splits = [s.strip() for s in config.eval_splits.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("val", "test")]
    if bad:
        raise UserError(f"eval_splits: {', '.join(bad)} not one of val, test")
    return splits


def select_split(splits):
    """The split whose r_mean selects the best epoch: val when evaluated, else the first one."""
    return "val" if "val" in splits else (splits[0] if splits else "val")


def create_evaluator(config, dist: DistInfo, device):
    from appzoo.blip_retrieval.evaluation import RetrievalEvaluator

    return RetrievalEvaluator(config.k_test, config.batch_size_test, precision=config.eval_precision,
                              device=device, dist=dist, timeout_s=config.collective_timeout,
                              progress=dist.is_main, num_workers=config.num_workers,
                              worker_start_method=config.worker_start_method)


def format_recall(split, metrics, skipped=None) -> str:
    """A two-line recall table of one split, and a third line when images were skipped (`skipped`: the
    evaluator's {"count", "of", "files"} of unreadable images)."""
    m = metrics
    table = (f"{split}: text retrieval  R@1 {m['txt_r1']:6.2f}  R@5 {m['txt_r5']:6.2f}  R@10 {m['txt_r10']:6.2f}\n"
             f"{split}: image retrieval R@1 {m['img_r1']:6.2f}  R@5 {m['img_r5']:6.2f}  R@10 {m['img_r10']:6.2f}"
             f"   r_mean {m['r_mean']:6.2f}")
    if skipped and skipped.get("count"):
        table += "\n" + format_skipped(split, skipped)
    return table


def format_skipped(split, skipped) -> str:
    """One line on the images of `split` skipped as unreadable (the evaluator's {"count", "of", "files"})."""
    files = skipped.get("files", [])
    listed = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    return (f"{split}: {skipped['count']} of {skipped['of']} images skipped as unreadable ({listed}); they and "
            "their captions count as misses in its recall")
