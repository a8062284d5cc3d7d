"""Text files the user gives (annotations, queries, vocabularies, parameter and DeepSpeed files): decoded as
Unicode, or refused in one line naming the file.

Accepted: UTF-8 (with or without a byte-order mark), and UTF-16 / UTF-32 with a byte-order mark (what
Windows editors write as "Unicode"). Anything else (GBK, Latin-1, ...) is refused: guessing an encoding
would silently change the captions the model sees.
"""
import codecs

from easyretrieval import fileio
from easyretrieval.errors import UserError

_BOMS = (  # longest first: the UTF-32-LE mark begins with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(raw: bytes, path: str, what: str = "file") -> str:
    """`raw` (the bytes of `path`) as text; UserError naming `what` and `path` when it is not Unicode text."""
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), "utf-8")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"{what} '{path}' is not UTF-8 text (byte 0x{raw[e.start]:02x} at line {line} cannot be "
                        "decoded; it may be GBK, Latin-1 or another encoding): save it as UTF-8") from None


def split_lines(text: str):
    """Lines as a file read in text mode gives them (\\n, \\r\\n or \\r ends a line), without their ends."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_text_file(path: str, what: str = "file") -> str:
    """The text of a local or oss:// file; UserError when it is missing, unreadable or not Unicode text."""
    try:
        raw = fileio.read_bytes(path)
    except FileNotFoundError:
        raise UserError(f"{what} '{path}' not found") from None
    except IsADirectoryError:
        raise UserError(f"{what} '{path}' is a folder, not a file") from None
    except OSError as e:
        raise UserError(f"cannot read {what} '{path}': {e.strerror or e}") from None
    return decode_text(raw, path, what)
