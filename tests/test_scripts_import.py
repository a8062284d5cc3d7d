"""Every script in scripts/ imports against the package as it is now (a renamed module or function breaks a
script that no other test runs, as plain_train.py's imports once did)."""
import importlib
import os

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
NAMES = sorted(f[:-3] for f in os.listdir(SCRIPTS) if f.endswith(".py") and f != "__init__.py")


def test_the_scripts_folder_is_listed():
    assert {"plain_train", "attribute_errors", "vision_probe", "params_table"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_script_imports(name):
    module = importlib.import_module(f"scripts.{name}")
    assert callable(getattr(module, "main", None)) or name == "params_table"
