"""Fixtures of the evaluation tests (helpers live in eval_fixtures.py)."""
import pytest

from eval_fixtures import make_dataset, make_tokenizer


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    return make_tokenizer(str(tmp_path_factory.mktemp("vocab")))


@pytest.fixture(scope="session")
def gallery(tmp_path_factory):
    """23 images, 1-5 captions each."""
    return make_dataset(str(tmp_path_factory.mktemp("gallery")), 23)
