"""`easyretrieval convert`: BLIP weights between the official layout, transformers and save_pretrained folders.

    easyretrieval convert --to hf     --input X --output DIR   # BlipForImageTextRetrieval folder + tokenizer
    easyretrieval convert --to blip   --input X --output FILE  # official {'model': state_dict} .pth
    easyretrieval convert --to folder --input X --output DIR   # save_pretrained folder (config, safetensors, vocab)

X is anything `pretrained=` takes: an official .pth or .safetensors file, a save_pretrained folder, an HF
folder or hub id, a modelzoo name or URL. The HF folder keeps what transformers has no place for (momentum
encoders, queues, temp) in blip_extras.safetensors, so HF -> blip round trips are exact. Torch is imported
only when the command runs (registering it costs nothing).
"""
import argparse

from easyretrieval.errors import UserError
from easyretrieval.registry import register_command

VITS = ("base", "large", "small", "tiny")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(f"convert: {message} (see easyretrieval convert --help)")


def _parser():
    parser = _Parser(prog="easyretrieval convert", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", required=True, choices=("hf", "blip", "folder"),
                        help="output layout: hf (transformers), blip (official .pth), folder (save_pretrained)")
    parser.add_argument("--input", required=True, help="weights: a file, folder, modelzoo name, URL or HF hub id")
    parser.add_argument("--output", required=True, help="output folder (hf, folder) or file (blip)")
    parser.add_argument("--vit", choices=VITS, default=None,
                        help="model size, when the weights' shapes should be read as another named size")
    parser.add_argument("--tokenizer", default=None,
                        help="vocab (vocab.txt, folder, modelzoo name or hub id); default: the input's own, "
                             "vocab.txt beside it, or bert-base-uncased for a 30524-token model")
    return parser


def load_input(spec, vit=None):
    """(located source, official-layout state dict, model config) of any `pretrained=`-style input."""
    from appzoo.blip_retrieval.model.hf_convert import infer_config
    from appzoo.blip_retrieval.model.sources import config_of, locate, read_weights

    source = locate(spec)
    state = read_weights(source)
    config = infer_config(state, vit) if vit is not None and source.config is None else config_of(source, state)
    if vit is not None and config.vit != vit:
        raise UserError(f"--vit {vit}: {spec} is a vit={config.vit} model")
    return source, state, config


def convert(to, input_spec, output, vit=None, tokenizer=None):
    """Convert `input_spec` to layout `to` at `output`; returns `output`."""
    from appzoo.blip_retrieval.model.pretrained import tokenizer_for

    source, state, config = load_input(input_spec, vit)
    if to == "blip":
        from appzoo.blip_retrieval.model.checkpoint import save_official

        return save_official(state, output)
    tok = tokenizer_for(source, config, tokenizer)
    if to == "hf":
        from appzoo.blip_retrieval.model.hf_folder import write_hf_folder

        return write_hf_folder(output, state, config, tok)
    from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
    from appzoo.blip_retrieval.model.checkpoint import load_state

    model = BlipRetrieval(config, tok)
    load_state(model, state, source=source.describe())  # official init of what the input lacks
    return model.save_pretrained(output, about={"converted_from": input_spec})


@register_command("convert", help="convert weights between the official .pth, transformers (HF) and "
                                  "save_pretrained layouts")
def convert_command(argv):
    args = _parser().parse_args(argv)
    out = convert(args.to, args.input, args.output, args.vit, args.tokenizer)
    print(f"wrote {out}")
    return 0
