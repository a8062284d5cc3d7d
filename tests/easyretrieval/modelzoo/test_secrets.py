"""Credentials never appear in what we print or write: mask_secrets, and an end-to-end CLI run."""
import os
import subprocess
import sys

from local_servers import TEST_KEY_ID, TEST_SECRET, files_under
from easyretrieval.secrets import mask_secrets

TOKEN = "CAIS-sts-token-value-0123456789"


def test_mask_secrets_hides_env_and_ossutil_values(monkeypatch, tmp_path):
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", TEST_KEY_ID)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", TEST_SECRET)
    monkeypatch.setenv("OSS_SECURITY_TOKEN", TOKEN)
    config = tmp_path / "ossutilconfig"
    config.write_text("[Credentials]\nendpoint=oss-cn-shanghai.aliyuncs.com\naccessKeyID=LTAIconfigKeyId99\n"
                      "accessKeySecret=configSecretValue77\n")
    monkeypatch.setenv("OSSUTIL_CONFIG_FILE", str(config))
    text = (f"id={TEST_KEY_ID} secret={TEST_SECRET} token={TOKEN} cfg=LTAIconfigKeyId99/configSecretValue77 "
            f"url=https://b.oss-cn-shanghai.aliyuncs.com/k?OSSAccessKeyId=OTHERID&Expires=1&Signature=ab%2Bc "
            f"hdr={{'authorization': 'OSS SOMEID:c2lnbmF0dXJl'}}")
    masked = mask_secrets(text)
    for secret in (TEST_KEY_ID, TEST_SECRET, TOKEN, "LTAIconfigKeyId99", "configSecretValue77", "OTHERID",
                   "ab%2Bc", "c2lnbmF0dXJl", "SOMEID"):
        assert secret not in masked, secret
    assert "oss-cn-shanghai.aliyuncs.com" in masked and "Expires=1" in masked  # the rest stays readable


def test_mask_secrets_leaves_ordinary_text_alone(monkeypatch):
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "ab")  # too short to mask without shredding text
    assert mask_secrets("a tabby cat") == "a tabby cat"


def test_access_key_appears_nowhere_in_output_or_files(oss_server, tmp_path, make_payload):
    """Run the CLI (fetch OSS objects with retries, a refusal that echoes the signed header) and grep it all."""
    good = oss_server.add("private-bucket", "ok/model.pth", make_payload(300_000))
    oss_server.inject("/private-bucket/ok/model.pth", "500", "drop")
    denied = oss_server.add("private-bucket", "denied/model.pth", b"x")
    oss_server.inject("/private-bucket/denied/model.pth", "403echo")
    cache = tmp_path / "cache"
    env = dict(os.environ, OSS_ACCESS_KEY_ID=TEST_KEY_ID, OSS_ACCESS_KEY_SECRET=TEST_SECRET,
               OSS_SECURITY_TOKEN=TOKEN, EASYRETRIEVAL_CACHE=str(cache))
    code = ("import easyretrieval.modelzoo.commands; from easyretrieval.cli import main; "
            "main(['models', 'fetch', {!r}, {!r}])".format(good, denied))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr  # the second fetch is refused: one line, exit 2
    assert "model.pth" in proc.stdout and "403 AccessDenied" in proc.stderr and "retrying" in proc.stderr
    assert "Authorization: OSS ***" in proc.stderr  # the echoed header was there, and masked
    blobs = [proc.stdout, proc.stderr] + [open(p, "rb").read().decode("latin-1") for p in files_under(cache)]
    for blob in blobs:
        for secret in (TEST_KEY_ID, TEST_SECRET, TOKEN):
            assert secret not in blob
