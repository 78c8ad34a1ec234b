"""servekit.in_child: a function runs in a fresh process, its result or exception comes back."""

import os
import sys

import pytest

from servekit.child import ChildFailed, in_child


def test_result_comes_back_and_imports_stay_in_the_child():
    def load(word, times=1):
        import colorsys  # noqa: F401  (a module this test process has not imported)

        print("printed text must not spoil the result")
        return {"word": word * times, "pid": os.getpid(), "imported": "colorsys" in sys.modules}

    assert "colorsys" not in sys.modules
    result = in_child(load, "ab", times=2)
    assert result["word"] == "abab" and result["imported"]
    assert result["pid"] != os.getpid()
    assert "colorsys" not in sys.modules, "the import stayed in the child"


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
