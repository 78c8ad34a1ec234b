"""servekit.in_child: a function runs in a fresh process, its result or exception comes back."""

import importlib
import os
import sys
import uuid

import pytest

from servekit.child import ChildFailed, in_child


def test_result_comes_back_and_imports_stay_in_the_child(tmp_path):
    # a module no other test can have imported: a fresh file with a unique name
    name = f"child_probe_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("VALUE = 42\n")

    def load(word, times=1):
        sys.path.insert(0, str(tmp_path))
        module = importlib.import_module(name)
        print("printed text must not spoil the result")
        return {"word": word * times, "pid": os.getpid(), "value": module.VALUE}

    result = in_child(load, "ab", times=2)
    assert result == {"word": "abab", "pid": result["pid"], "value": 42}
    assert result["pid"] != os.getpid()
    assert name not in sys.modules, "the import stayed in the child"


def test_the_functions_exception_is_raised_here():
    def fails():
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        in_child(fails)


def test_a_child_that_dies_is_reported_with_its_stderr():
    def dies():
        print("last words", file=sys.stderr)
        os._exit(3)

    with pytest.raises(ChildFailed, match="(?s)code 3.*last words"):
        in_child(dies)


def test_the_child_gets_the_environment_and_folder_it_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVEKIT_PARENT_ONLY", "1")

    def where():
        return os.getcwd(), dict(os.environ)

    cwd, env = in_child(where)
    assert cwd == os.getcwd() and env["SERVEKIT_PARENT_ONLY"] == "1", "by default, the parent's"
    cwd, env = in_child(where, env={"PATH": os.environ["PATH"], "SERVEKIT_CHILD": "42"}, cwd=tmp_path)
    assert cwd == str(tmp_path)
    assert env["SERVEKIT_CHILD"] == "42" and "SERVEKIT_PARENT_ONLY" not in env, "the whole environment"


def test_the_functions_exception_carries_the_childs_last_lines():
    def fails_loudly():
        print("what the child said before it failed")
        raise ValueError("bad value")

    with pytest.raises(ValueError, match="bad value") as caught:
        in_child(fails_loudly)
    note = "\n".join(caught.value.__notes__)
    assert "what the child said" in note and "ValueError: bad value" in note, note
