"""CLI: exit codes, one-line errors without traceback, config.json, help output."""
import json
import os
import subprocess
import sys

import pytest

from easyretrieval.cli import run_main


def run_cli(*args, cwd=None, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "easyretrieval.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=120)


@pytest.mark.parametrize("args,message", [
    (["--app", "blip_retrieval", "--user_defined_parameters", "vit=huge"], "'huge' is not one of"),
    (["--app", "blip_retrieval", "--user_defined_parameters", "k_tset=3"], "did you mean 'k_test'"),
    (["--app", "blip_retrieval", "--user_defined_parameters", "vit_grad_ckpt=maybe"], "expected true/false"),
    (["--app", "blip_retreival"], "did you mean 'blip_retrieval'"),
    (["--app", "blip_retrieval", "--mode", "tran"], "invalid choice"),
    (["--mode", "train"], "--app is required"),
    (["--app", "blip_retrieval", "--deepspeed_config", "nope.json"], "nope.json' not found"),
    (["frobnicate"], "unknown command 'frobnicate'"),
])
def test_user_errors_are_one_line_exit_2(args, message, tmp_path):
    result = run_cli(*args, "--output_dir", str(tmp_path / "o"), cwd=tmp_path) if args[0].startswith("-") \
        else run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip() and "[WARNING]" not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("easyretrieval: error:") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_nothing_saved_is_lost_on_bad_parameters(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("previous")
    result = run_cli("--app", "blip_retrieval", "--output_dir", str(out), "--user_defined_parameters", "alpha=2")
    assert result.returncode == 2 and "above the maximum" in result.stderr
    assert (out / "config.json").read_text() == "previous"


def test_list_apps_and_help_params():
    listed = run_cli("--list-apps")
    assert listed.returncode == 0 and "blip_retrieval" in listed.stdout.split()
    helped = run_cli("--app", "blip_retrieval", "--help-params")
    assert helped.returncode == 0
    for name in ("k_test", "negative_all_rank", "vit_ckpt_layer", "image_root"):
        assert name in helped.stdout


def test_config_json_is_saved_with_resolved_defaults(tmp_path, monkeypatch):
    from appzoo.blip_retrieval.app import BlipRetrievalApp

    seen = {}
    monkeypatch.setattr(BlipRetrievalApp, "evaluate", lambda self: seen.setdefault("cfg", self.config))
    code = run_main(["--app", "blip_retrieval", "--mode", "evaluate", "--output_dir", str(tmp_path),
                     "--local-rank", "0", "--user_defined_parameters", "vit=large batch_size_test=8"])
    assert code == 0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["mode"] == "evaluate" and saved["app"] == "blip_retrieval"
    assert saved["parameters"]["batch_size_test"] == 8
    assert saved["parameters"]["batch_size_train"] == 16 and saved["parameters"]["vit_ckpt_layer"] == 10
    assert seen["cfg"].vit == "large"


def test_secrets_are_masked_in_errors_and_config(tmp_path, monkeypatch):
    secret = "S3cr3tKeyValue0123456789"
    result = run_cli("--app", "blip_retrieval", "--output_dir", str(tmp_path),
                     "--user_defined_parameters", f"vit={secret}", env={"OSS_ACCESS_KEY_SECRET": secret})
    assert result.returncode == 2 and "is not one of" in result.stderr
    assert secret not in result.stderr + result.stdout

    from appzoo.blip_retrieval.app import BlipRetrievalApp

    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", secret)
    monkeypatch.setattr(BlipRetrievalApp, "evaluate", lambda self: None)
    assert run_main(["--app", "blip_retrieval", "--mode", "evaluate", "--output_dir", str(tmp_path),
                     "--user_defined_parameters", f"image_root=oss://bucket/{secret}/images"]) == 0
    assert secret not in (tmp_path / "config.json").read_text()


@pytest.mark.parametrize("option", ["--user_defined_parameters", "--deepspeed_config"])
def test_parameter_and_deepspeed_files_in_another_encoding_are_one_line(tmp_path, option, capsys):
    path = tmp_path / "settings.json"
    path.write_bytes('{"vit": "tiny", "_comment": "réglages"}'.encode("latin-1"))
    value = f"@{path}" if option == "--user_defined_parameters" else str(path)
    code = run_main(["--app", "blip_retrieval", "--output_dir", str(tmp_path / "o"), option, value])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"'{path}' is not UTF-8 text" in err
    assert not (tmp_path / "o").exists()


def test_evaluate_into_a_training_folder_writes_a_subfolder(tmp_path, monkeypatch):
    from appzoo.blip_retrieval.app import BlipRetrievalApp

    (tmp_path / "config.json").write_text('{"mode": "train", "seed": 7}')
    seen = {}
    monkeypatch.setattr(BlipRetrievalApp, "evaluate", lambda self: seen.setdefault("out", self.run.output_dir))
    assert run_main(["--app", "blip_retrieval", "--mode", "evaluate", "--output_dir", str(tmp_path)]) == 0
    assert seen["out"] == str(tmp_path / "evaluate")
    assert (tmp_path / "config.json").read_text() == '{"mode": "train", "seed": 7}'
    assert json.loads((tmp_path / "evaluate" / "config.json").read_text())["mode"] == "evaluate"


def test_help_lists_the_commands_and_every_option_has_help():
    from easyretrieval.cli import build_parser

    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("commands (easyretrieval COMMAND --help):")[1].strip().splitlines()
    assert [line.split()[0] for line in commands] == ["convert", "export", "models"]
    assert all(len(line.split()) > 3 for line in commands)  # one line of description each
    from appzoo.blip_retrieval.commands import _parser as convert_parser
    from easyretrieval.engine.export import _parser as export_parser
    from easyretrieval.modelzoo.commands import _parser as models_parser

    for parser in (build_parser(), convert_parser(), export_parser(), models_parser()):
        for action in parser._actions:
            assert action.help, (parser.prog, action.option_strings or action.dest)


@pytest.mark.parametrize("args", [["--help"], ["--list-apps"], ["--app", "blip_retrieval", "--help-params"]])
def test_help_and_listing_import_no_torch(args):
    """--help, --list-apps and --help-params answer without importing torch (timed in benchmarks/cli_startup.py)."""
    code = ("import atexit, contextlib, io, sys\nfrom easyretrieval.cli import main\n"
            "atexit.register(lambda: print(sorted(m for m in ('torch', 'transformers', 'deepspeed') "
            "if m in sys.modules)))\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(sys.argv[1:])\n")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_flickr_example_help_and_deepspeed_arguments(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = os.path.join(root, "examples", "flickr.py")
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0, helped.stderr
    for option in ("--deepspeed ", "--deepspeed_config", "--image_root", "--k_test", "--mode", "--output_dir"):
        assert option in helped.stdout, option
    bad = subprocess.run([sys.executable, script, "--deepspeed", "--deepspeed_config", str(tmp_path / "no.json"),
                          "--output_dir", str(tmp_path / "o"), "--vit", "huge"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "'huge' is not one of" in bad.stderr and "Traceback" not in bad.stderr


def test_messages_are_rank_aware(capsys):
    from easyretrieval.log import get_logger, setup_logging

    logger = get_logger()
    try:
        setup_logging(rank=0)
        logger.info("story")
        logger.warning("careful")
        out, err = capsys.readouterr()
        assert out == "[easyretrieval] story\n" and err == "[easyretrieval] careful\n"
        setup_logging(rank=3)
        logger.info("story")
        logger.warning("careful")
        out, err = capsys.readouterr()
        assert out == "" and err == "[easyretrieval rank 3] careful\n"
    finally:
        setup_logging(rank=0)
