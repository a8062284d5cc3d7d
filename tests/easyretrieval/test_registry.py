"""Registry: duplicates rejected, typos get a did-you-mean, apps found through their entry point."""
import os
import subprocess
import sys
import textwrap

import pytest

from easyretrieval.errors import UserError
from easyretrieval.registry import APPS, Registry, available_apps, get_app


def test_register_and_get():
    reg = Registry("widget")

    @reg.register("alpha")
    class Alpha:
        pass

    assert reg.get("alpha") is Alpha
    assert reg.names() == ["alpha"]
    assert "alpha" in reg


def test_duplicate_name_is_an_error():
    reg = Registry("widget")
    reg.register("x")(int)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("x")(float)


def test_unknown_name_suggests_the_closest():
    reg = Registry("widget")
    reg.register("blip_retrieval")(int)
    with pytest.raises(UserError, match="did you mean 'blip_retrieval'"):
        reg.get("blip_retreival")


def test_blip_retrieval_is_discovered_through_its_entry_point():
    assert "blip_retrieval" in available_apps()
    app = get_app("blip_retrieval")
    assert APPS.get("blip_retrieval") is app


def test_unknown_app_lists_known_ones():
    with pytest.raises(UserError, match="known: .*blip_retrieval"):
        get_app("blip_retrievl")


PLUGIN_SETUP = """
from setuptools import setup
setup(name="er-test-plugin", version="0.0.1", py_modules=["er_test_plugin"],
      entry_points={"easyretrieval.apps": ["echo_app=er_test_plugin:EchoApp"]})
"""

PLUGIN_MODULE = '''
"""A third-party app: registers nothing in easyretrieval's code, only declares an entry point."""
import json, os
from easyretrieval.app import App
from easyretrieval.parameters import Param, ParamSchema

class EchoApp(App):
    schema = ParamSchema([Param("word", str, "hello", "what to write"), Param("times", int, 1, "repeats", min=1)])

    def train(self):
        with open(os.path.join(self.run.output_dir, "echo.json"), "w") as f:
            json.dump({"text": " ".join([self.config.word] * self.config.times)}, f)
'''


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    src = tmp_path_factory.mktemp("plugin")
    (src / "setup.py").write_text(textwrap.dedent(PLUGIN_SETUP))
    (src / "er_test_plugin.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(pip + ["install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(src)],
                   check=True, cwd=str(src))
    yield
    subprocess.run(pip + ["uninstall", "-q", "-y", "er-test-plugin"], check=True)


def _cli(*args, cwd):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "easyretrieval.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_third_party_plugin_is_discovered_and_runs(installed_plugin, tmp_path):
    listed = _cli("--list-apps", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "echo_app" in listed.stdout.split()
    assert "blip_retrieval" in listed.stdout.split()
    out = tmp_path / "out"
    ran = _cli("--app", "echo_app", "--mode", "train", "--output_dir", str(out),
               "--user_defined_parameters", "word='hi there' times=2", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert (out / "echo.json").read_text() == '{"text": "hi there hi there"}'
    bad = _cli("--app", "echo_app", "--mode", "train", "--output_dir", str(out),
               "--user_defined_parameters", "tims=2", cwd=tmp_path)
    assert bad.returncode == 2
    assert "did you mean 'times'" in bad.stderr
    unsupported = _cli("--app", "echo_app", "--mode", "predict", "--output_dir", str(out), cwd=tmp_path)
    assert unsupported.returncode == 2 and "no predict mode" in unsupported.stderr
