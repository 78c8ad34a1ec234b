"""The root conftest.py's suite rules, without running a notebook: every test has one tier. Fakes
stand in for pytest's items."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from servekit.paths import REPO_ROOT


def _root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", REPO_ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


root = _root_conftest()


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_module_in_the_table_exists_and_every_named_test_is_in_it():
    for name, entry in root.MODULE_TIERS.items():
        path = REPO_ROOT / "tests" / name
        assert path.exists(), f"MODULE_TIERS names {name}, which is gone"
        if isinstance(entry, str):
            assert entry in root.TIERS, (name, entry)
            continue
        assert set(entry) <= set(root.TIERS), (name, entry)
        named = [f for names in entry.values() for f in names]
        assert len(named) == len(set(named)), f"{name}: a test listed in two tiers"
        assert set(named) <= _test_functions(path), f"{name}: {sorted(set(named) - _test_functions(path))}"


def test_tier_comes_from_the_file_type_the_table_or_the_mark():
    tier_of = root.tier_of
    assert tier_of(Path("solutions/01_first_deployment.ipynb"), "Cell 3", set()) == {"notebook"}
    assert tier_of(Path("tests/test_style.py"), "test_ruff", set()) == {"unit"}
    assert tier_of(Path("tests/test_grade.py"), "test_capstone_details", set()) == {"live"}
    assert tier_of(Path("tests/test_grade.py"), "test_count_names", set()) == {"unit"}
    assert tier_of(Path("tests/test_grade.py"), "test_new_and_unsorted", set()) == set()
    assert tier_of(Path("tests/test_new.py"), "test_a", set()) == set()
    assert tier_of(Path("tests/test_new.py"), "test_a", {"live"}) == {"live"}
    assert tier_of(Path("tests/test_style.py"), "test_ruff", {"live"}) == {"unit", "live"}  # a conflict


class FakeItem:
    def __init__(self, nodeid: str, marks: set[str] = frozenset(), config=None, parent=None):
        self.nodeid, self.path, self.marks, self.added = nodeid, Path(nodeid.split("::")[0]), marks, []
        self.name = self.originalname = nodeid.split("::")[-1]
        self.config, self.parent, self.fspath = config, parent, SimpleNamespace(basename=self.path.name)

    def get_closest_marker(self, name):
        return name if name in self.marks else None

    def add_marker(self, name):
        self.added.append(name)


def test_collection_marks_each_item_and_stops_on_an_unsorted_one():
    items = [FakeItem("solutions/00_setup.ipynb::Cell 0"), FakeItem("tests/test_style.py::test_ruff")]
    items.append(FakeItem("tests/test_new.py::test_a", {"live"}))
    root.pytest_collection_modifyitems(None, items)
    assert [i.added for i in items] == [["notebook"], ["unit"], []]
    with pytest.raises(pytest.UsageError, match=r"tests/test_new.py::test_b: no tier"):
        root.pytest_collection_modifyitems(None, [FakeItem("tests/test_new.py::test_b")])
    with pytest.raises(pytest.UsageError, match=r"test_ruff: \['live', 'unit'\]"):
        root.pytest_collection_modifyitems(None, [FakeItem("tests/test_style.py::test_ruff", {"live"})])
