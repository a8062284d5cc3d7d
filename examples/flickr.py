"""Fine-tune / evaluate BLIP retrieval on Flickr30k: the same code path as `easyretrieval --app blip_retrieval`.

    deepspeed examples/flickr.py --image_root /data/flickr30k --ann_root /data/flickr30k/annotation \
        [--deepspeed_config ds_configs/zero2.json] [--mode train|evaluate|predict] [--output_dir DIR] \
        [--any_parameter value ...]          (every app parameter: easyretrieval --app blip_retrieval --help-params)

Also runs under `torchrun --nproc_per_node N examples/flickr.py ...` and as one plain `python` process.
"""
import sys

from easyretrieval.cli import build_parser, main

APP = "blip_retrieval"


def to_cli_argv(argv):
    """`--name value` pairs of app parameters become --user_defined_parameters; CLI options pass through."""
    cli_options = {a.option_strings[0].lstrip("-") for a in build_parser()._actions if a.option_strings}
    cli_options |= {"local-rank"}
    passthrough, params = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise SystemExit(f"flickr.py: unexpected argument '{arg}' (use --name value)")
        name, sep, value = arg[2:].partition("=")
        if not sep:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise SystemExit(f"flickr.py: --{name} needs a value")
            value = argv[i + 1]
            i += 1
        i += 1
        if name in cli_options:
            passthrough += [f"--{name}", value]
        else:
            params.append(f"{name}={value}")
    if not any(p.startswith("dataset=") for p in params):
        params.insert(0, "dataset=flickr")
    user = " ".join(f"'{p}'" if " " in p else p for p in params)
    return ["--app", APP, *passthrough, "--user_defined_parameters", user]


if __name__ == "__main__":
    main(to_cli_argv(sys.argv[1:]))
