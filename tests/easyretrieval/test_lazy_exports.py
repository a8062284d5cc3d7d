"""lazy_exports: names imported on first use and cached; unknown names fail as attribute lookups do."""
import subprocess
import sys
import types

import pytest

from easyretrieval.lazy_exports import lazy_exports


def test_first_use_imports_and_caches(monkeypatch):
    package = types.ModuleType("lazy_pkg")
    monkeypatch.setitem(sys.modules, "lazy_pkg", package)
    package.__getattr__, package.__all__ = lazy_exports("lazy_pkg", {"dumps": "json", "sqrt": "math"})
    assert package.__all__ == ["dumps", "sqrt"]
    import json

    assert package.dumps is json.dumps and vars(package)["dumps"] is json.dumps  # cached in the package
    with pytest.raises(AttributeError, match="module 'lazy_pkg' has no attribute 'loads'"):
        package.loads


def test_packages_import_without_torch():
    code = ("import sys, appzoo.blip_retrieval, appzoo.blip_retrieval.model, appzoo.blip_retrieval.index, "
            "easyretrieval.modelzoo; print('torch' in sys.modules, 'oss2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
