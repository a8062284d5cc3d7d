"""The README stays current: its parameter table is the schema's, and the commands it names exist."""
import os
import re

from scripts.params_table import table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_parameter_table_matches_the_schema():
    found = re.search(r"<!-- params-table:start -->\n(.*?)\n<!-- params-table:end -->", _readme(), re.S)
    assert found, "README.md lost its parameter table markers"
    assert found.group(1) == table("blip_retrieval"), "regenerate: python scripts/params_table.py"


def test_the_two_commands_and_ci_agree():
    readme = _readme()
    assert "make demo" in readme and "make test" in readme
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert "make test" in f.read()
