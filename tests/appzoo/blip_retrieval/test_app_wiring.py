"""The app's glue: parameters -> DeepSpeed config, examples/flickr.py -> the CLI's arguments."""
import importlib.util
import os

import pytest

from appzoo.blip_retrieval.app import ds_params_from
from appzoo.blip_retrieval.params import SCHEMA
from easyretrieval.engine.ds_config import build_ds_config, load_ds_config, precision_of, zero_stage_of
from easyretrieval.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _flickr_module():
    spec = importlib.util.spec_from_file_location("flickr_example", os.path.join(REPO, "examples", "flickr.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parameters_fill_the_deepspeed_config():
    config = SCHEMA.resolve({"vit": "large", "gradient_accumulation_steps": "2", "gradient_clipping": "1.0",
                             "precision": "bf16", "zero_stage": "3"})
    ds = build_ds_config(load_ds_config(os.path.join(REPO, "ds_configs", "zero2.json")), ds_params_from(config), 8)
    assert ds["train_micro_batch_size_per_gpu"] == 16  # vit=large default batch_size_train
    assert ds["train_batch_size"] == 16 * 2 * 8
    assert ds["gradient_clipping"] == 1.0
    assert precision_of(ds) == "bf16" and zero_stage_of(ds) == 3


def test_default_is_zero1_fp32_and_a_disagreeing_file_fails(tmp_path):
    ds = build_ds_config(load_ds_config(None), ds_params_from(SCHEMA.resolve({})), 1)
    assert zero_stage_of(ds) == 1 and precision_of(ds) == "fp32" and ds["train_micro_batch_size_per_gpu"] == 32
    bad = tmp_path / "ds.json"
    bad.write_text('{"train_micro_batch_size_per_gpu": 8}')
    with pytest.raises(UserError, match="batch_size_train"):
        build_ds_config(load_ds_config(str(bad)), ds_params_from(SCHEMA.resolve({})), 1)


def test_flickr_example_turns_options_into_cli_arguments():
    to_cli_argv = _flickr_module().to_cli_argv
    argv = to_cli_argv(["--image_root", "/data/my images", "--local_rank=1", "--deepspeed_config", "ds.json",
                        "--vit", "large", "--output_dir", "out"])
    assert argv[:2] == ["--app", "blip_retrieval"]
    assert argv[argv.index("--local_rank") + 1] == "1"
    assert argv[argv.index("--deepspeed_config") + 1] == "ds.json"
    assert argv[argv.index("--output_dir") + 1] == "out"
    params = argv[argv.index("--user_defined_parameters") + 1]
    from easyretrieval.parameters import parse_user_defined_parameters

    assert parse_user_defined_parameters(params) == {"dataset": "flickr", "image_root": "/data/my images",
                                                     "vit": "large"}
    custom = parse_user_defined_parameters(to_cli_argv(["--dataset", "custom"])[-1])
    assert custom == {"dataset": "custom"}
    with pytest.raises(SystemExit):
        to_cli_argv(["--vit"])
