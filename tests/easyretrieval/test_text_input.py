"""User text files: UTF-8 (with or without BOM) and UTF-16/32 with BOM are read; any other encoding is
refused in one line naming the file."""
import codecs

import pytest

from easyretrieval.errors import UserError
from easyretrieval.text_input import decode_text, read_text_file, split_lines

TEXT = "一只红色的盒子\nune boîte bleue\n"


@pytest.mark.parametrize("raw", [
    TEXT.encode("utf-8"),
    codecs.BOM_UTF8 + TEXT.encode("utf-8"),
    TEXT.encode("utf-16"),  # with its byte-order mark, as Windows "Unicode" files
    TEXT.encode("utf-32"),
    codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
])
def test_unicode_files_are_read(tmp_path, raw):
    path = tmp_path / "queries.txt"
    path.write_bytes(raw)
    assert read_text_file(str(path), "queries file") == TEXT


@pytest.mark.parametrize("encoding", ["gbk", "latin-1", "cp1252", "shift_jis"])
def test_other_encodings_are_refused_naming_the_file(encoding):
    raw = "première ligne\n一只红色的盒子\n".encode(encoding, errors="ignore")
    with pytest.raises(UserError) as info:
        decode_text(raw, "data/queries.txt", "queries file")
    message = str(info.value)
    assert "queries file 'data/queries.txt' is not UTF-8 text" in message and "\n" not in message


def test_missing_and_folder_are_one_line(tmp_path):
    with pytest.raises(UserError, match="vocab 'nope.txt' not found"):
        read_text_file("nope.txt", "vocab")
    with pytest.raises(UserError, match="is a folder"):
        read_text_file(str(tmp_path), "vocab")


def test_split_lines_is_text_mode_newlines():
    assert split_lines("a\r\nb\rc\nd") == ["a", "b", "c", "d"]
    assert split_lines("a\n\nb\n") == ["a", "", "b"]
    assert split_lines("line\u2028same line\n") == ["line\u2028same line"]  # only \n, \r\n, \r end a line
