"""Fine-tune / evaluate BLIP retrieval on Flickr30k: the same code path as `easyretrieval --app blip_retrieval`.

    deepspeed examples/flickr.py --image_root /data/flickr30k --ann_root /data/flickr30k/annotation \
        [--deepspeed --deepspeed_config ds_configs/zero2.json] [--mode train|evaluate|predict] \
        [--output_dir DIR] [--any_parameter value ...]        (examples/flickr.py --help lists them all)

Also runs under `torchrun --nproc_per_node N examples/flickr.py ...` and as one plain `python` process.
DeepSpeed's own arguments come from `deepspeed.add_config_arguments` (--deepspeed, --deepspeed_config);
every app parameter is an option `--name value` (types are checked as for --user_defined_parameters).
"""
import argparse
import json
import sys

from easyretrieval.cli import add_run_arguments, main

APP = "blip_retrieval"


def build_parser():
    import deepspeed

    from appzoo.blip_retrieval.params import SCHEMA

    parser = argparse.ArgumentParser(prog="examples/flickr.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser.add_argument_group("run"), deepspeed_config=False)
    deepspeed.add_config_arguments(parser)
    params = parser.add_argument_group("parameters of the blip_retrieval app (dataset defaults to flickr)")
    for p in SCHEMA.params:
        default = "by vit" if p.default_from is not None else repr(p.default)
        choices = f"; one of {', '.join(map(str, p.choices))}" if p.choices else ""
        params.add_argument(f"--{p.name}", metavar=p.type.__name__.upper(), default=argparse.SUPPRESS,
                            help=f"{p.help} (default {default}{choices})".replace("%", "%%"))
    return parser


def to_cli_argv(argv):
    """The `easyretrieval` command line of `examples/flickr.py ARGV` (app parameters become a JSON
    --user_defined_parameters; run and DeepSpeed options pass through)."""
    from appzoo.blip_retrieval.params import SCHEMA

    args = vars(build_parser().parse_args(argv))
    params = {name: args.pop(name) for name in SCHEMA.names() if name in args}
    params.setdefault("dataset", "flickr")
    deepspeed_config = args.get("deepspeed_config") or args.get("deepscale_config")
    cli = ["--app", APP, "--mode", args["mode"], "--output_dir", args["output_dir"], "--seed", str(args["seed"])]
    if deepspeed_config:
        cli += ["--deepspeed_config", deepspeed_config]
    if args.get("local_rank") is not None:
        cli += ["--local_rank", str(args["local_rank"])]
    return cli + ["--user_defined_parameters", json.dumps(params)]


if __name__ == "__main__":
    main(to_cli_argv(sys.argv[1:]))
