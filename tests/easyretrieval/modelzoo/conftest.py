"""Fixtures for the modelzoo tests: servers on 127.0.0.1, a fresh cache, a clean credential environment."""
import pytest

from local_servers import TEST_KEY_ID, TEST_SECRET, FaultyHttpServer, OssServer, payload


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No real credentials, ossutil config, offline flag or mirror leak into a test; retries are fast."""
    for name in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SECURITY_TOKEN", "OSS_ENDPOINT",
                 "EASYRETRIEVAL_OFFLINE", "EASYRETRIEVAL_MODELZOO_URL", "EASYRETRIEVAL_SALESFORCE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OSSUTIL_CONFIG_FILE", str(tmp_path / "no-ossutilconfig"))
    monkeypatch.setenv("EASYRETRIEVAL_DOWNLOAD_BACKOFF", "0.01")
    monkeypatch.setenv("EASYRETRIEVAL_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


@pytest.fixture
def http_server():
    with FaultyHttpServer(checksums=("md5",)) as server:
        yield server


@pytest.fixture
def oss_server(monkeypatch):
    with OssServer(TEST_KEY_ID, TEST_SECRET, public=("public-bucket",)) as server:
        monkeypatch.setenv("OSS_ENDPOINT", server.base_url)
        yield server


@pytest.fixture
def oss_credentials(monkeypatch):
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", TEST_KEY_ID)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", TEST_SECRET)


@pytest.fixture
def make_payload():
    return payload
