"""The root conftest.py's suite rules, without running a notebook: every test has one tier, and a
notebook whose cells ran in next to no time fails. Fakes stand in for pytest's items and reports."""

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


def test_a_notebook_whose_cells_took_under_the_floor_fails():
    clock = root.NotebookClock(floor_s=1.0)
    for when, seconds in [("setup", 5.0), ("call", 0.2), ("teardown", 3.0), ("call", 0.3)]:
        clock.record("solutions/empty.ipynb", when, seconds, failed=False)  # kernel start/stop do not count
    reason = clock.too_fast("solutions/empty.ipynb")
    assert reason and "0.50 s" in reason and "1 s floor" in reason
    assert "ran nothing" in clock.too_fast("solutions/never_recorded.ipynb")


def test_a_notebook_that_ran_failed_or_ran_in_part_is_not_judged():
    clock = root.NotebookClock(floor_s=1.0)
    for _ in range(3):
        clock.record("solutions/real.ipynb", "call", 0.4, failed=False)
    clock.record("solutions/broken.ipynb", "call", 0.1, failed=True)
    clock.record("solutions/some.ipynb", "call", 0.1, failed=False)
    clock.partial.add("solutions/some.ipynb")  # -k or -m deselected some of its cells
    assert clock.too_fast("solutions/real.ipynb") is None
    assert clock.too_fast("solutions/broken.ipynb") is None, "already red: one failure is enough"
    assert clock.too_fast("solutions/some.ipynb") is None
    assert clock.seconds["solutions/real.ipynb"] == pytest.approx(1.2)


def _drive(wrapper, *args, sent=None):
    """Run a wrapper=True hook around an inner result ``sent``; what it returns."""
    gen = wrapper(*args)
    next(gen)
    try:
        gen.send(sent)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the hook yielded twice")


def test_the_hooks_time_each_cell_and_fail_the_last_one_of_a_notebook_that_ran_nothing(monkeypatch):
    monkeypatch.setattr(root, "reap_leftovers", lambda grace_s: [])  # this test's process has no kernel
    monkeypatch.setattr(root, "remove_stale", lambda: None)
    config = SimpleNamespace(stash={root._CLOCK: root.NotebookClock(floor_s=1.0)})
    notebook = object()
    cells = [FakeItem(f"solutions/x.ipynb::Cell {i}", config=config, parent=notebook) for i in range(2)]
    for cell in cells:
        report = SimpleNamespace(when="call", duration=0.01, failed=False)
        assert _drive(root.pytest_runtest_makereport, cell, None, sent=report) is report
    assert config.stash[root._CLOCK].seconds == {"solutions/x.ipynb": pytest.approx(0.02)}
    assert _drive(root.pytest_runtest_teardown, cells[0], cells[1]) is None, "not the last cell yet"
    with pytest.raises(pytest.fail.Exception, match=r"solutions/x.ipynb: its cells ran 0.02 s"):
        _drive(root.pytest_runtest_teardown, cells[1], None)
