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


def test_python_example_prints_what_the_readme_shows(tmp_path):
    """The Python section's example, run on a vit=tiny save_pretrained folder in place of make demo's."""
    import subprocess
    import sys

    readme = _readme()
    section = readme.split("## Python\n", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 10 and '"output/demo/best"' in code

    from appzoo.blip_retrieval.model import create_config, create_tokenizer
    from appzoo.blip_retrieval.model.blip_retrieval import BlipRetrieval
    from appzoo.blip_retrieval.model.tokenizer import build_wordpiece_vocab

    tokenizer = create_tokenizer(build_wordpiece_vocab(["a red square", "a blue circle"], str(tmp_path / "v.txt")))
    model = BlipRetrieval(create_config("tiny", 48, vocab_size=len(tokenizer), queue_size=64), tokenizer)
    model.save_pretrained(str(tmp_path / "best"))
    code = code.replace('"output/demo/best"', repr(str(tmp_path / "best")))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown
