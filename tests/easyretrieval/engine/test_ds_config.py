import glob
import json
import os

import pytest

from easyretrieval.engine.ds_config import (
    DEFAULT_DS_CONFIG, DsParams, build_ds_config, load_ds_config, precision_of, zero_stage_of,
)
from easyretrieval.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIG_FILES = sorted(glob.glob(os.path.join(REPO, "ds_configs", "*.json")))


def test_default_is_zero1_file():
    assert load_ds_config(os.path.join(REPO, "ds_configs", "zero1.json")) == DEFAULT_DS_CONFIG
    assert load_ds_config(None) == DEFAULT_DS_CONFIG and load_ds_config(None) is not DEFAULT_DS_CONFIG


def test_auto_fields_filled_from_parameters():
    cfg = build_ds_config(DEFAULT_DS_CONFIG, DsParams(micro_batch_size=16, gradient_accumulation_steps=3,
                                                      gradient_clipping=1.5), world_size=4)
    assert cfg["train_micro_batch_size_per_gpu"] == 16
    assert cfg["gradient_accumulation_steps"] == 3
    assert cfg["train_batch_size"] == 16 * 3 * 4
    assert cfg["gradient_clipping"] == 1.5
    assert DEFAULT_DS_CONFIG["train_batch_size"] == "auto"  # the input is not modified
    assert precision_of(cfg) == "fp32" and zero_stage_of(cfg) == 1


def test_number_that_agrees_is_kept_and_one_that_disagrees_fails():
    base = dict(DEFAULT_DS_CONFIG, train_micro_batch_size_per_gpu=8)
    assert build_ds_config(base, DsParams(8), 2)["train_micro_batch_size_per_gpu"] == 8
    with pytest.raises(UserError, match="micro_batch_size"):
        build_ds_config(base, DsParams(16), 2)
    with pytest.raises(UserError, match="but my_batch gives 16"):  # the app's name for the parameter
        build_ds_config(base, DsParams(16, names=(("micro_batch_size", "my_batch"),)), 2)
    with pytest.raises(UserError, match="train_batch_size"):
        build_ds_config(dict(DEFAULT_DS_CONFIG, train_batch_size=64), DsParams(8), 2)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_every_file_with_every_precision(path, precision):
    cfg = build_ds_config(load_ds_config(path), DsParams(4, precision=precision), 2, where=path)
    assert precision_of(cfg) == precision
    assert "auto" not in json.dumps(cfg)


def test_zero_stage_override_and_offload_rules():
    cfg = build_ds_config(DEFAULT_DS_CONFIG, DsParams(4, zero_stage=3), 1)
    assert zero_stage_of(cfg) == 3
    offload = load_ds_config(os.path.join(REPO, "ds_configs", "zero3_offload.json"))
    with pytest.raises(UserError, match="offload_param needs ZeRO stage 3"):
        build_ds_config(offload, DsParams(4, zero_stage=2), 1)
    assert build_ds_config(offload, DsParams(4), 1)["zero_force_ds_cpu_optimizer"] is False


def test_rejects_optimizer_section_both_precisions_and_bad_files(tmp_path):
    with pytest.raises(UserError, match="optimizer"):
        build_ds_config(dict(DEFAULT_DS_CONFIG, optimizer={"type": "Adam"}), DsParams(4), 1)
    both = dict(DEFAULT_DS_CONFIG, bf16={"enabled": True}, fp16={"enabled": True})
    with pytest.raises(UserError, match="both bf16 and fp16"):
        build_ds_config(both, DsParams(4), 1)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="invalid JSON"):
        load_ds_config(str(bad))
    with pytest.raises(UserError, match="not found"):
        load_ds_config(str(tmp_path / "missing.json"))
