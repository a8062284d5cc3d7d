import os

import pytest

from appzoo.blip_retrieval.data.validation import entry_problems, path_problems, validate_annotations
from easyretrieval.cli import run_main
from easyretrieval.errors import UserError
from easyretrieval.registry import COMMANDS, register_command

from data_helpers import write_json


def _fails(files, image_root, kind, **kw):
    with pytest.raises(UserError) as e:
        validate_annotations(files, image_root, kind, **kw)
    message = str(e.value)
    assert "\n" not in message and message.startswith("annotation check failed: ")
    assert e.value.exit_code == 2
    return message


def test_valid_files_pass_and_return_counts(tmp_path, image_root):
    train = write_json(str(tmp_path / "train.json"), [{"image": "a.jpg", "caption": "x", "image_id": 1},
                                                      {"image": "sub/c.jpg", "caption": ["y", "z"]}])
    val = write_json(str(tmp_path / "val.json"), [{"image": "b.jpg", "caption": ["p", "q"]}])
    assert validate_annotations({"train": train}, image_root, "train", decode=True) == {"train": 2}
    assert validate_annotations({"val": val, "test": [val]}, image_root, "eval") == {"val": 1, "test": 1}


def test_malformed_json(tmp_path, image_root):
    path = tmp_path / "flickr30k_train.json"
    path.write_text('[{"image": "a.jpg", "caption": "x"},\n  {"image": }]')
    message = _fails({"train": str(path)}, image_root, "train")
    assert "flickr30k_train.json" in message and "not valid JSON" in message and "line 2" in message


def test_not_a_list(tmp_path, image_root):
    path = write_json(str(tmp_path / "t.json"), {"image": "a.jpg"})
    assert "must hold a JSON list" in _fails({"train": path}, image_root, "train")


def test_missing_annotation_file(tmp_path, image_root):
    assert "not found" in _fails({"val": str(tmp_path / "nope.json")}, image_root, "eval")


def test_missing_key_names_file_and_index(tmp_path, image_root):
    path = write_json(str(tmp_path / "flickr30k_train.json"), [
        {"image": "a.jpg", "caption": "x", "image_id": 1}, {"caption": "no image"}, {"image": "b.jpg"}])
    message = _fails({"train": path}, image_root, "train")
    assert message == ("annotation check failed: 2 problems: flickr30k_train.json[1]: missing key 'image'; "
                       "flickr30k_train.json[2]: missing key 'caption'")


def test_wrong_types(tmp_path, image_root):
    path = write_json(str(tmp_path / "t.json"), [
        {"image": 5, "caption": "x"}, {"image": "a.jpg", "caption": 3}, {"image": "a.jpg", "caption": ["ok", None]},
        "just a string", {"image": "a.jpg", "caption": "x", "image_id": [1]}])
    message = _fails({"train": path}, image_root, "train")
    assert "t.json[0]: 'image' must be a string, got int" in message
    assert "t.json[1]: caption must be a string, got int" in message
    assert "t.json[2]: caption 1: caption must be a string, got NoneType" in message
    assert "t.json[3]: entry must be an object, got str" in message
    assert "t.json[4]: 'image_id' must be a string or integer, got list" in message


def test_eval_caption_must_be_a_list(tmp_path, image_root):
    path = write_json(str(tmp_path / "val.json"), [{"image": "a.jpg", "caption": "one string"}])
    assert "val.json[0]: 'caption' must be a list of strings" in _fails({"val": path}, image_root, "eval")


def test_empty_captions(tmp_path, image_root):
    path = write_json(str(tmp_path / "t.json"), [{"image": "a.jpg", "caption": "  "},
                                                 {"image": "b.jpg", "caption": []},
                                                 {"image": "b.jpg", "caption": ["fine", ""]},
                                                 {"image": "b.jpg", "caption": ".!"}])
    message = _fails({"train": path}, image_root, "train")
    assert "t.json[0]: empty caption" in message and "t.json[1]: empty caption list" in message
    assert "t.json[2]: caption 1: empty caption" in message
    assert "t.json[3]: caption '.!' is empty once punctuation is removed" in message


def test_missing_image(tmp_path, image_root):
    path = write_json(str(tmp_path / "val.json"), [{"image": "a.jpg", "caption": ["x"]},
                                                   {"image": "sub/zz.jpg", "caption": ["y"]}])
    message = _fails({"val": path}, image_root, "eval")
    assert message.endswith(f"1 problem: val.json[1]: image 'sub/zz.jpg' not found under image_root '{image_root}'")


def test_truncated_jpeg_is_found_by_the_decode_check(tmp_path, image_root):
    jpg = os.path.join(image_root, "b.jpg")
    data = open(jpg, "rb").read()
    open(jpg, "wb").write(data[: len(data) // 2])
    path = write_json(str(tmp_path / "val.json"), [{"image": "b.jpg", "caption": ["y"]}])
    validate_annotations({"val": path}, image_root, "eval")  # presence only: passes
    message = _fails({"val": path}, image_root, "eval", decode=True)
    assert "val.json[0]: image 'b.jpg' cannot be decoded" in message and "truncated" in message.lower()


@pytest.mark.parametrize("bad", ["../images/a.jpg", "sub/../../x.jpg", "/etc/passwd", "..", "C:/x.jpg",
                                 "oss://bucket/x.jpg", "\\\\server\\x.jpg"])
def test_path_escape(tmp_path, image_root, bad):
    path = write_json(str(tmp_path / "t.json"), [{"image": bad, "caption": "x"}])
    message = _fails({"train": path}, image_root, "train")
    assert "t.json[0]: image path" in message and ("absolute" in message or "leaves image_root" in message)
    assert "not found" not in message  # escaping paths are never looked up


def test_inside_paths_are_fine():
    assert path_problems("sub/../a.jpg") == [] and path_problems("./a.jpg") == []
    assert entry_problems({"image": "a.jpg", "caption": ["x"]}, "eval") == []


def test_only_first_ten_problems_are_listed(tmp_path, image_root):
    path = write_json(str(tmp_path / "t.json"), [{"caption": "x"}] * 13)
    message = _fails({"train": path}, image_root, "train")
    assert message.startswith("annotation check failed: 13 problems: ")
    assert message.count("missing key 'image'") == 10 and message.endswith("; ... and 3 more")


def test_the_cli_prints_one_line_and_exits_2(tmp_path, image_root, capsys):
    path = write_json(str(tmp_path / "t.json"), [{"image": "../x.jpg", "caption": ""}])

    @register_command("_test_validate_annotations")
    def _cmd(argv):
        validate_annotations({"train": path}, image_root, "train")
        return 0

    try:
        code = run_main(["_test_validate_annotations"])
    finally:
        COMMANDS._items.pop("_test_validate_annotations")
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "t.json[0]: image path '../x.jpg' leaves image_root" in err
    assert "t.json[0]: empty caption" in err
