"""The one plugin loader and REASONER_LOAD_PLUGINS, with real installed distributions: each test
puts a package and its dist-info (as pip writes them) on sys.path."""

import sys
import textwrap

import pytest

from reasoner import plugins, tasks, verifiers
from reasoner.tasks import Example, Task
from tests.conftest import install_distribution

MODULE = textwrap.dedent('''
    from reasoner.tasks import Example, Task
    from reasoner.verifiers import Verdict, Verifier

    class Shouty(Verifier):
        """Reward 1 for upper-case replies."""
        name = "shouty"
        def verify(self, completion, example):
            ok = completion.isupper()
            return Verdict(float(ok), ok, "shouted" if ok else "quiet")

    def load(arg, split="train"):
        """Three greetings to shout back."""
        return Task("greetings", [Example(f"g{i}", f"say hi {i}", "HI", "shouty") for i in range(3)], split=split)
''')


@pytest.fixture
def shouty(tmp_path, monkeypatch):
    """Distribution ``Shouty_Plugins`` with a verifier ``shouty`` and a task ``greetings``."""
    install_distribution(tmp_path, "shouty_plugins", MODULE, "Shouty_Plugins", "1.0",
                         "[reasoner.verifiers]\nshouty = shouty_plugins:Shouty\n\n"
                         "[reasoner.tasks]\ngreetings = shouty_plugins:load\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugins.ENV, raising=False)
    yield
    sys.modules.pop("shouty_plugins", None)


def test_unset_loads_every_plugin(shouty):
    assert verifiers.available()["shouty"] == "Reward 1 for upper-case replies."
    assert verifiers.get("shouty").verify("HI", Example("1", "p", "HI", "shouty")).ok
    task = tasks.load("greetings")
    assert isinstance(task, Task) and len(task) == 3 and task[0].verifier == "shouty"


def test_empty_loads_no_third_party_plugin_but_every_built_in(shouty, monkeypatch):
    monkeypatch.setenv(plugins.ENV, "")
    assert "shouty" not in verifiers.available() and "greetings" not in tasks.available()
    assert {"math", "format", "code"} <= set(verifiers.available())
    assert {"arithmetic", "gsm8k", "jsonl"} <= set(tasks.available())
    assert len(tasks.load("arithmetic")) > 0  # built-ins load through the same path
    with pytest.raises(verifiers.VerifierError, match="'shouty' is installed but REASONER_LOAD_PLUGINS=''"):
        verifiers.get("shouty")
    with pytest.raises(tasks.TaskError, match="'greetings' is installed but REASONER_LOAD_PLUGINS"):
        tasks.load("greetings")


@pytest.mark.parametrize("value", ["shouty-plugins", "SHOUTY_PLUGINS", " other , shouty.plugins"])
def test_a_distribution_name_loads_all_of_its_plugins(shouty, monkeypatch, value):
    monkeypatch.setenv(plugins.ENV, value)  # compared as pip compares names
    assert "shouty" in verifiers.available() and "greetings" in tasks.available()


def test_an_entry_point_name_loads_only_that_plugin(shouty, monkeypatch):
    monkeypatch.setenv(plugins.ENV, "shouty")
    assert "shouty" in verifiers.available()
    assert "greetings" not in tasks.available()
    assert plugins.held_back("reasoner.tasks") == ["greetings"]


def test_a_plugin_cannot_replace_a_built_in(tmp_path, monkeypatch, caplog):
    (tmp_path / "fake_math.py").write_text(
        "from reasoner.verifiers import Verdict, Verifier\n"
        "class Always(Verifier):\n    \"\"\"Everything is right.\"\"\"\n"
        "    def verify(self, completion, example):\n        return Verdict(1.0, True, 'correct')\n")
    info = tmp_path / "fake_math-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-math\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[reasoner.verifiers]\nmath = fake_math:Always\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugins.ENV, raising=False)
    verifier = verifiers.get("math")
    assert type(verifier).__module__.startswith("reasoner.verifiers")
    assert not verifier.verify("the answer is 5", Example("1", "p", "4", "math")).ok
    assert "has the name of one already loaded" in caplog.text
    verifier.close()
    sys.modules.pop("fake_math", None)
