"""`easyretrieval convert --to hf|blip --input X --output Y`: official BLIP <-> transformers checkpoints.

--to hf:   X is an official checkpoint file ({'model': sd}); Y a folder written by save_pretrained
           (BlipForImageTextRetrieval) plus blip_extras.pth (momentum encoders, queues, temp).
--to blip: X is such a folder (blip_extras.pth optional); Y an official {'model': sd} file.
"""
import argparse
import os

import torch

from easyretrieval.errors import UserError

from appzoo.blip_retrieval.model.checkpoint import read_state_dict, save_official
from appzoo.blip_retrieval.model.config import VITS, create_config
from appzoo.blip_retrieval.model.hf_convert import from_hf, infer_config, to_hf

EXTRAS_FILE = "blip_extras.pth"


def _parser():
    parser = argparse.ArgumentParser(prog="easyretrieval convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", required=True, choices=("hf", "blip"))
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--vit", choices=VITS, default=None, help="model size when the width is ambiguous")
    return parser


def convert_to_hf(input_path, output_dir, vit=None):
    from transformers import BlipConfig, BlipForImageTextRetrieval

    state = read_state_dict(input_path)
    config = infer_config(state, vit)
    hf_state, hf_kwargs, extras = to_hf(state, config)
    model = BlipForImageTextRetrieval(BlipConfig(**hf_kwargs))
    result = model.load_state_dict(hf_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(f"{input_path} does not map onto BlipForImageTextRetrieval: "
                        f"missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}")
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    torch.save({"extras": extras, "config": config.to_dict()}, os.path.join(output_dir, EXTRAS_FILE))
    return output_dir


def convert_to_blip(input_dir, output_path, vit=None):
    from transformers import BlipForImageTextRetrieval

    if not os.path.isdir(input_dir):
        raise UserError(f"--to blip needs a transformers model folder, got {input_dir}")
    hf_model = BlipForImageTextRetrieval.from_pretrained(input_dir, local_files_only=True)
    hf_state = hf_model.state_dict()
    extras_path = os.path.join(input_dir, EXTRAS_FILE)
    extras = torch.load(extras_path, map_location="cpu", weights_only=True) if os.path.isfile(extras_path) else {}
    hc = hf_model.config
    if vit is None:
        vit = {768: "base", 1024: "large"}.get(hc.vision_config.hidden_size)
        if vit is None:
            raise UserError(f"vision width {hc.vision_config.hidden_size} is not base/large; pass --vit")
    queue = extras.get("extras", {}).get("image_queue")
    config = create_config(vit, hc.vision_config.image_size, vocab_size=hc.text_config.vocab_size,
                           embed_dim=hc.image_text_hidden_size,
                           **({"queue_size": queue.shape[1]} if queue is not None else {}))
    state = from_hf(hf_state, config, extras.get("extras"))
    return save_official(state, output_path)


def convert_command(argv):
    """`easyretrieval convert` (registered by appzoo/blip_retrieval/__init__.py, which imports this module
    only when the command runs)."""
    args = _parser().parse_args(argv)
    if args.to == "hf":
        out = convert_to_hf(args.input, args.output, args.vit)
    else:
        out = convert_to_blip(args.input, args.output, args.vit)
    print(f"wrote {out}")
    return 0
