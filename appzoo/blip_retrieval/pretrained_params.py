"""`pretrained=` fills in the sizes it describes, so they need not be repeated.

A save_pretrained folder (e.g. OUTPUT_DIR/best) fixes vit, image_size, patch_size, vit_stem, queue_size,
max_words and the tokenizer; an HF folder or hub id fixes vit, image_size, patch_size, vit_stem (patch) and the
tokenizer; a fine-tuned
modelzoo entry fixes vit and image_size, a pre-trained-only one vit (official fine-tuning starts from it at
another image size); a weights file fixes nothing, except that a vocab.txt beside it is its tokenizer. Each applies only
to parameters the user did not set; the values derived from `vit` (batch sizes, lr, checkpointing) follow.
A user value that contradicts the source is an error: vit and vit_stem always (the weights cannot fit),
image_size unless resize_pretrained=True (then the position-embedding interpolation is logged).
"""
from easyretrieval.errors import UserError
from easyretrieval.log import get_logger
from easyretrieval.parameters import Config

logger = get_logger()


def _patches(image_size, patch_size):
    return (image_size // patch_size) ** 2


def complete_config(config: Config, schema) -> Config:
    """`config` with the sizes `pretrained=` describes filled in (see the module docstring)."""
    if not config.pretrained:
        return config
    from appzoo.blip_retrieval.model.sources import locate

    source = locate(config.pretrained, weights=False)
    sizes = dict(source.sizes())
    if isinstance(source.vocab, str) and "tokenizer" not in config.user_set:
        sizes["tokenizer"] = source.vocab
    where = f"pretrained={config.pretrained}"
    if "vit" in sizes and "vit" in config.user_set and config.vit != sizes["vit"]:
        raise UserError(f"vit={config.vit} contradicts {where}, a vit={sizes['vit']} model: drop vit= (it is "
                        "taken from the model) or give a checkpoint of that size")
    if "vit_stem" in sizes and "vit_stem" in config.user_set and config.vit_stem != sizes["vit_stem"]:
        raise UserError(f"vit_stem={config.vit_stem} contradicts {where}, a model with vit_stem={sizes['vit_stem']}: "
                        "drop vit_stem= (it is taken from the model)")
    wanted = sizes.get("image_size")
    if wanted is not None and "image_size" in config.user_set and config.image_size != wanted:
        if not config.resize_pretrained:
            raise UserError(f"image_size={config.image_size} contradicts {where}, trained at {wanted} px: drop "
                            "image_size= (it is taken from the model), or add resize_pretrained=True to "
                            "interpolate its position embeddings to the new size")
        patch = sizes.get("patch_size", 16)
        logger.info("%s was trained at %d px; image_size=%d: position embeddings interpolated %d -> %d patches "
                    "(bicubic, as official)", where, wanted, config.image_size, _patches(wanted, patch),
                    _patches(config.image_size, patch))
    taken = {k: v for k, v in sizes.items() if k not in config.user_set and config.get(k) != v}
    if not taken:
        return config
    raw = {k: config[k] for k in config.user_set}
    raw.update(taken)
    completed = schema.resolve(raw)
    logger.info("%s (%s) sets %s", where, source.describe(), " ".join(f"{k}={v}" for k, v in taken.items()))
    return Config(completed, user_set=config.user_set)
