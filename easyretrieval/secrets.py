"""Masking of credentials (OSS access keys, STS tokens, signed-URL signatures) in any text we print or save.

`mask_secrets(text)` replaces every known secret value with '***'. Secret values come from the environment
(OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_SECURITY_TOKEN) and from the ossutil config file, plus the
signature parts of signed URLs and `Authorization` headers that oss2 exceptions can echo.
"""
import configparser
import os
import re

SECRET_ENV_VARS = ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SECURITY_TOKEN")
# Keys in ~/.ossutilconfig ([Credentials] section) whose values are secret.
OSSUTIL_SECRET_KEYS = ("accesskeyid", "accesskeysecret", "ststoken", "accessKeyID", "accessKeySecret")
MASK = "***"
_MIN_SECRET_LEN = 4  # masking 1-3 character "secrets" would shred ordinary text

# Signed-URL query values and Authorization header values, whatever the key is.
_PATTERNS = (
    re.compile(r"(?i)((?:OSSAccessKeyId|Signature|security-token|x-oss-signature|x-oss-credential"
               r"|x-oss-security-token)=)[^&\s'\"]+"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:OSS4?-?\S*\s+)?)[^\s'\",}]+"),
)


def ossutil_config_path():
    """The ossutil config file: $OSSUTIL_CONFIG_FILE or ~/.ossutilconfig."""
    return os.environ.get("OSSUTIL_CONFIG_FILE") or os.path.expanduser("~/.ossutilconfig")


def read_ossutil_config(path=None):
    """{'accesskeyid', 'accesskeysecret', 'ststoken', 'endpoint'} from an ossutil config file ({} if none)."""
    path = path or ossutil_config_path()
    if not os.path.isfile(path):
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}
    for section in ("Credentials", "default"):
        if parser.has_section(section):
            return {k.lower(): v.strip() for k, v in parser.items(section) if v.strip()}
    return {}


def secret_values():
    """Every secret value currently known (environment and ossutil config), longest first."""
    values = {os.environ.get(name, "").strip() for name in SECRET_ENV_VARS}
    config = read_ossutil_config()
    values |= {config.get(key.lower(), "") for key in OSSUTIL_SECRET_KEYS}
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True)


def mask_secrets(text):
    """`text` (any object, via str) with every credential value and URL signature replaced by '***'."""
    text = str(text)
    for value in secret_values():
        text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text
