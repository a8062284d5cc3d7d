"""The `easyretrieval` command: pick an app and a mode, parse its parameters, run it.

  easyretrieval --app NAME --mode {train,evaluate,predict} --output_dir DIR [--deepspeed_config FILE]
                [--seed N] --user_defined_parameters "k=v k=v ..."
  easyretrieval --list-apps | --app NAME --help-params
  easyretrieval COMMAND ...        (models, convert, export: `easyretrieval COMMAND --help`)

Problems the user can fix print one line and exit with code 2, without a traceback. Messages go through
`logging` (easyretrieval/log.py: rank 0's on stdout, warnings of every rank on stderr). --help,
--help-params and --list-apps import no torch (they answer at once).
"""
import argparse
import faulthandler
import importlib
import json
import os
import sys

from easyretrieval.app import RunContext
from easyretrieval.distributed import dist_info_from_env, exit_process, shutdown_distributed
from easyretrieval.errors import UserError
from easyretrieval.log import get_logger, setup_logging
from easyretrieval.parameters import parse_user_defined_parameters
from easyretrieval.registry import COMMAND_HELP, COMMANDS, available_apps, get_app, load_all_apps
from easyretrieval.run_dir import CONFIG_FILE, claim_output_dir, mode_output_dir, recorded_mode, release_output_dir
from easyretrieval.secrets import mask_secrets

logger = get_logger()

MODES = ("train", "evaluate", "predict")
# Core modules that register sub-commands; apps register theirs when loaded.
_CORE_COMMAND_MODULES = ("easyretrieval.modelzoo.commands", "easyretrieval.engine.export")


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports errors as UserError (one line, exit 2) instead of usage + exit."""

    def error(self, message):
        raise UserError(f"{message} (see easyretrieval --help)")


def load_commands():
    """Import the modules that register sub-commands (the core's and every app's); no torch import."""
    for module in _CORE_COMMAND_MODULES:
        importlib.import_module(module)
    load_all_apps()


class _HelpAction(argparse.Action):
    """-h/--help: the options, then the sub-commands with one line each (loaded only when asked for)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        load_commands()
        lines = [parser.format_help(), "commands (easyretrieval COMMAND --help):"]
        width = max(len(name) for name in COMMANDS.names())
        lines += [f"  {name:<{width}}  {COMMAND_HELP.get(name, '')}" for name in COMMANDS.names()]
        print("\n".join(lines))
        parser.exit()


def add_run_arguments(p, deepspeed_config=True):
    """The run options shared by `easyretrieval` and examples/flickr.py (which takes --deepspeed_config
    from deepspeed.add_config_arguments instead: deepspeed_config=False)."""
    p.add_argument("--mode", choices=MODES, default="train", help="what to run (default: train)")
    p.add_argument("--output_dir", default="output", help="where checkpoints, metrics and config.json go")
    if deepspeed_config:
        p.add_argument("--deepspeed_config", default=None, help="DeepSpeed JSON config (see ds_configs/; "
                                                                "default: ds_configs/zero1.json)")
        p.add_argument("--deepspeed", action="store_true",
                       help="accepted for DeepSpeed's launcher convention; training always runs on DeepSpeed")
    p.add_argument("--seed", type=int, default=42, help="random seed of the run (default: 42)")
    # The deepspeed launcher passes --local_rank=N; torchrun sets LOCAL_RANK instead.
    p.add_argument("--local_rank", "--local-rank", type=int, default=None,
                   help="set by the deepspeed launcher (torchrun sets LOCAL_RANK instead)")


def build_parser():
    p = _ArgumentParser(prog="easyretrieval", description="Image-text retrieval apps on DeepSpeed.", add_help=False)
    p.add_argument("-h", "--help", action=_HelpAction, help="show this help (options and commands) and exit")
    p.add_argument("--app", help="registered app name, e.g. blip_retrieval (--list-apps shows them)")
    add_run_arguments(p)
    p.add_argument("--user_defined_parameters", default="", help="the app's parameters: 'k=v k=v', a JSON "
                                                                 "object or @file (--help-params lists them)")
    p.add_argument("--list-apps", action="store_true", help="list the installed apps and exit")
    p.add_argument("--help-params", action="store_true", help="list the app's parameters and exit")
    return p


def run_app(app_name, mode, output_dir, raw_params, seed=42, deepspeed_config=None, local_rank=None):
    """Resolve parameters and run one mode of one app; shared by the CLI and examples/.

    Order: parameters, the app's checks that need no data, the output folder claimed (rank 0), then the
    mode runs; a bad command so fails within seconds, before any download, process group or model.
    """
    app_cls = get_app(app_name)
    config = app_cls.complete_config(app_cls.schema.resolve(raw_params))
    if deepspeed_config is not None and not os.path.isfile(deepspeed_config):
        raise UserError(f"--deepspeed_config: file '{deepspeed_config}' not found (see ds_configs/)")
    dist = dist_info_from_env(local_rank)
    where = mode_output_dir(output_dir, mode)
    run = RunContext(mode=mode, output_dir=where, seed=seed, deepspeed_config=deepspeed_config, dist=dist,
                     given_output_dir=output_dir if where != output_dir else None)
    app = app_cls(config, run)
    app.check()
    resolved = {
        "app": app_name,
        "mode": mode,
        "output_dir": where,
        "seed": seed,
        "deepspeed_config": deepspeed_config,
        "world_size": dist.world_size,
        "parameters": config.to_dict(),
    }
    if dist.is_main:
        claim_output_dir(where, mode)
        if where != output_dir:
            logger.info("--output_dir '%s' holds a %s run; this %s run writes into '%s'", output_dir,
                        recorded_mode(output_dir), mode, where)
        # A signed URL given as pretrained= or image_root= must not leak its signature into logs or files.
        text = mask_secrets(json.dumps(resolved, indent=2, sort_keys=False))
        logger.info("resolved config:\n%s", text)
        with open(os.path.join(where, CONFIG_FILE), "w", encoding="utf-8") as f:
            f.write(text + "\n")
    try:
        result = getattr(app, mode)()
        shutdown_distributed()
    finally:
        if dist.is_main:
            release_output_dir(where)
    return result


def _run_command(argv):
    name = argv[0]
    if name not in COMMANDS:
        load_commands()
    return COMMANDS.get(name)(argv[1:])


def _main(argv):
    if argv and not argv[0].startswith("-"):
        return _run_command(argv) or 0
    args = build_parser().parse_args(argv)
    if args.list_apps:
        for name in available_apps():
            print(name)
        return 0
    if not args.app:
        raise UserError("--app is required (easyretrieval --list-apps lists them)")
    if args.help_params:
        app_cls = get_app(args.app)
        print(f"Parameters of app '{args.app}' (pass as --user_defined_parameters \"name=value ...\"):")
        print(app_cls.schema.help_text())
        return 0
    raw = parse_user_defined_parameters(args.user_defined_parameters)
    run_app(args.app, args.mode, args.output_dir, raw, args.seed, args.deepspeed_config, args.local_rank)
    return 0


def run_main(argv=None):
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    setup_logging(int(os.environ.get("RANK", "0")))
    try:
        code = _main(argv)
    except UserError as e:
        rank = int(os.environ.get("RANK", "0"))
        prefix = "easyretrieval: error: " if rank == 0 else f"easyretrieval: error (rank {rank}): "
        # one write, so that ranks printing at once (unbuffered under torchrun) do not mix their lines
        sys.stderr.write(prefix + mask_secrets(str(e)).replace("\n", " ") + "\n")
        sys.stderr.flush()
        code = e.exit_code
    return code


def main(argv=None):
    """The `easyretrieval` program: run, then end the process with the exit code."""
    faulthandler.enable()  # a crash in native code still shows where Python was
    exit_process(run_main(argv))


if __name__ == "__main__":
    main()
