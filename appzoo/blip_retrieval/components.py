"""Building blocks every mode of the app shares: tokenizer, model, datasets, evaluator.

Each function takes the resolved parameters (and paths / ranks) and returns one object.
"""
import os

from easyretrieval.distributed import DistInfo, barrier
from easyretrieval.errors import UserError
from easyretrieval.log import get_logger

logger = get_logger()

VOCAB_FILE = "vocab.txt"  # tokenizer=build writes the vocab here, in output_dir


def vocab_candidates(config, output_dir):
    """Where a vocab built by tokenizer=build may be: this run's output_dir, then beside `pretrained`."""
    paths = [os.path.join(output_dir, VOCAB_FILE)]
    if config.pretrained and os.path.exists(config.pretrained):
        paths.append(os.path.join(os.path.dirname(os.path.abspath(config.pretrained)), VOCAB_FILE))
    return paths


def create_app_tokenizer(config, output_dir, dist: DistInfo, train_dataset=None):
    """BLIP's tokenizer from `tokenizer=` (modelzoo name, URL, path) or, for 'build', a WordPiece vocab
    trained on the training captions once (rank 0) and kept in output_dir so resume/evaluate reuse it."""
    from appzoo.blip_retrieval.model import build_wordpiece_vocab, create_tokenizer

    if config.tokenizer != "build":
        from easyretrieval.modelzoo import resolve

        return create_tokenizer(resolve(config.tokenizer, hub_files=("vocab.txt",)))
    for path in vocab_candidates(config, output_dir):
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


def create_evaluator(config, dist: DistInfo, device):
    from appzoo.blip_retrieval.evaluation import RetrievalEvaluator

    return RetrievalEvaluator(config.k_test, config.batch_size_test, precision=config.eval_precision,
                              device=device, dist=dist, timeout_s=config.collective_timeout,
                              progress=dist.is_main, num_workers=config.num_workers,
                              worker_start_method=config.worker_start_method)


def format_recall(split, metrics) -> str:
    """A two-line recall table of one split."""
    m = metrics
    return (f"{split}: text retrieval  R@1 {m['txt_r1']:6.2f}  R@5 {m['txt_r5']:6.2f}  R@10 {m['txt_r10']:6.2f}\n"
            f"{split}: image retrieval R@1 {m['img_r1']:6.2f}  R@5 {m['img_r5']:6.2f}  R@10 {m['img_r10']:6.2f}"
            f"   r_mean {m['r_mean']:6.2f}")
