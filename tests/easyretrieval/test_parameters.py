"""Parameter parsing: strict types, quoting, JSON/YAML forms, did-you-mean, vit-dependent defaults."""
import json

import pytest

from easyretrieval.errors import UserError
from easyretrieval.parameters import Param, ParamSchema, parse_user_defined_parameters
from appzoo.blip_retrieval.params import SCHEMA


@pytest.mark.parametrize("text,expected", [
    ("true", True), ("False", False), ("0", False), ("1", True), ("no", False), ("YES", True), ("off", False),
])
def test_bool_conversion_is_strict(text, expected):
    assert Param("flag", bool, False).convert(text) is expected


@pytest.mark.parametrize("text", ["maybe", "2", "", "tru"])
def test_bad_bools_are_rejected(text):
    with pytest.raises(UserError, match="parameter 'flag': expected true/false"):
        Param("flag", bool, False).convert(text)


def test_int_float_and_ranges():
    p = Param("n", int, 1, min=1, max=10)
    assert p.convert("7") == 7 and p.convert(3.0) == 3
    for bad in ("7.5", "x", True, 2.5):
        with pytest.raises(UserError, match="parameter 'n'"):
            p.convert(bad)
    with pytest.raises(UserError, match="below the minimum"):
        p.convert("0")
    with pytest.raises(UserError, match="above the maximum"):
        p.convert("11")
    assert Param("lr", float, 1.0).convert("1e-5") == 1e-5


def test_choices_get_did_you_mean():
    with pytest.raises(UserError, match="did you mean 'large'"):
        SCHEMA.resolve({"vit": "lage"})


def test_shell_quoting_keeps_spaces_and_equals():
    raw = parse_user_defined_parameters("image_root='/data/my images' ann_root=/a=b vit=large")
    assert raw == {"image_root": "/data/my images", "ann_root": "/a=b", "vit": "large"}


@pytest.mark.parametrize("text,msg", [
    ("vit", "not of the form name=value"),
    ("=3", "not of the form name=value"),
    ("vit=base vit=large", "given twice"),
    ("image_root='unterminated", "check the quotes"),
    ('{"vit": ', "invalid JSON"),
    ('{"vit": ["base"]}', "single value"),
])
def test_malformed_parameters(text, msg):
    with pytest.raises(UserError, match=msg):
        parse_user_defined_parameters(text)


def test_json_and_files(tmp_path):
    assert parse_user_defined_parameters('{"vit": "large", "k_test": 128}') == {"vit": "large", "k_test": 128}
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"vit": "large", "vit_grad_ckpt": False}))
    y = tmp_path / "p.yaml"
    y.write_text("vit: large\nvit_grad_ckpt: false\ninit_lr: 2.0e-6\n")
    for path in (j, y):
        cfg = SCHEMA.resolve(parse_user_defined_parameters(f"@{path}"))
        assert cfg.vit == "large" and cfg.vit_grad_ckpt is False
    assert SCHEMA.resolve(parse_user_defined_parameters(f"@{y}")).init_lr == 2e-6
    with pytest.raises(UserError, match="not found"):
        parse_user_defined_parameters(f"@{tmp_path / 'missing.json'}")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="expected an object"):
        parse_user_defined_parameters(f"@{tmp_path / 'list.yaml'}")


def test_unknown_parameter_gets_did_you_mean():
    with pytest.raises(UserError, match="unknown parameter 'batch_size_tran' \\(did you mean 'batch_size_train'"):
        SCHEMA.resolve({"batch_size_tran": "3"})


@pytest.mark.parametrize("vit,expected", [
    ("base", (32, 64, 4, 1e-5)),
    ("large", (16, 32, 10, 5e-6)),
])
def test_vit_dependent_defaults(vit, expected):
    cfg = SCHEMA.resolve({"vit": vit})
    assert (cfg.batch_size_train, cfg.batch_size_test, cfg.vit_ckpt_layer, cfg.init_lr) == expected
    assert cfg.vit_grad_ckpt is True


@pytest.mark.parametrize("dataset,k_test,negative_all_rank", [
    ("flickr", 128, False),  # official configs/retrieval_flickr.yaml
    ("coco", 256, True),     # official configs/retrieval_coco.yaml
    ("custom", 128, False),  # custom data follows Flickr, as EasyNLP's example
])
def test_dataset_dependent_defaults(dataset, k_test, negative_all_rank):
    cfg = SCHEMA.resolve({"dataset": dataset})
    assert (cfg.k_test, cfg.negative_all_rank) == (k_test, negative_all_rank)
    cfg = SCHEMA.resolve({"dataset": "coco", "k_test": "64", "negative_all_rank": "False"})
    assert (cfg.k_test, cfg.negative_all_rank) == (64, False)


def test_user_values_win_over_vit_defaults():
    cfg = SCHEMA.resolve({"vit": "large", "batch_size_train": "8", "init_lr": "1e-4", "vit_grad_ckpt": "False"})
    assert (cfg.batch_size_train, cfg.init_lr, cfg.vit_grad_ckpt) == (8, 1e-4, False)
    assert cfg.batch_size_test == 32 and cfg.vit_ckpt_layer == 10
    assert cfg.user_set == {"vit", "batch_size_train", "init_lr", "vit_grad_ckpt"}


def test_official_parameter_names_are_all_declared():
    official = ("image_root ann_root dataset train_file val_file test_file pretrained vit batch_size_train "
                "batch_size_test vit_grad_ckpt vit_ckpt_layer init_lr image_size queue_size alpha k_test "
                "negative_all_rank weight_decay min_lr max_epoch").split()
    assert [n for n in official if n not in SCHEMA] == []


def test_nullable_and_schema_checks():
    assert Param("z", int, None, nullable=True).convert("none") is None
    with pytest.raises(ValueError, match="declared twice"):
        ParamSchema([Param("a", int, 1), Param("a", int, 2)])
    with pytest.raises(ValueError, match="unknown 'nope'"):
        ParamSchema([Param("a", int, None, default_from=("nope", {}))])


def test_help_text_lists_every_parameter():
    text = SCHEMA.help_text()
    for name in SCHEMA.names():
        assert f"  {name} " in text
    assert "base: 32; large: 16" in text
