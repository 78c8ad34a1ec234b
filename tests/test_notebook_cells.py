"""servekit.notebook_cells: the one loader of a notebook's tagged cells (tests, make bench)."""

from __future__ import annotations

import nbformat
import pytest

from servekit.notebook_cells import load_cells, tagged_code, unload


def notebook(tmp_path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells]
    path = tmp_path / "99_demo.ipynb"
    nbformat.write(nb, path)
    return path


def test_cells_keep_real_annotations_as_in_a_kernel(tmp_path):
    # The loader's own `from __future__ import annotations` must not leak into the cells: FastAPI
    # reads a body model from a real class, and a kernel never postpones annotations.
    path = notebook(
        tmp_path, ("class Body:\n    pass\n\ndef f(b: Body) -> int:\n    return 1\n", ["app-code"])
    )
    module = load_cells(path)
    try:
        assert module.f.__annotations__ == {"b": module.Body, "return": int}
    finally:
        unload(module)


def test_only_tagged_cells_run_in_order_as_a_registered_module(tmp_path):
    import sys

    path = notebook(
        tmp_path,
        ("x = [1]", ["app-code"]),
        ("raise RuntimeError('an untagged cell ran')", []),
        ("x.append(2)", ["measure-code"]),
        ("x.append(3)", ["app-code"]),
    )
    assert tagged_code(path, ["app-code"]) == "x = [1]\n\nx.append(3)"
    module = load_cells(path, ("app-code", "measure-code"), name="demo_cells")
    try:
        assert module.x == [1, 2, 3]
        assert sys.modules["demo_cells"] is module
    finally:
        unload(module)
    assert "demo_cells" not in sys.modules


def test_a_tag_no_cell_carries_is_an_error_not_an_empty_module(tmp_path):
    path = notebook(tmp_path, ("x = 1", ["app-code"]))
    with pytest.raises(LookupError, match="no code cell tagged 'app-cod'"):
        load_cells(path, ("app-cod",))
