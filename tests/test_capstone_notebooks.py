"""The capstone's notebooks keep the contract with the grader; the reference solutions are not lessons.

solutions/capstone/*.ipynb are answers: scripts/make_notebooks.py does not copy them to notebooks/ (it
only takes solutions/NN_*.ipynb) and tests/test_notebooks.py's lesson rules do not apply; pytest's
nbval still runs them (testpaths include solutions/). What every capstone notebook must have: a
fresh, clean stored run; ``CAPSTONE`` set in the first code cell after the imports; the app deployed
under its name and route; the load-test report written; cleanup cells tagged ``cleanup`` at the end.
"""

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = sorted((ROOT / "solutions" / "capstone").glob("*.ipynb"))
CAPSTONES = [ROOT / "solutions" / "10_capstone.ipynb", *REFERENCES]


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_three_references_none_copied_to_notebooks():
    assert {p.stem for p in REFERENCES} >= {"healthcare_diagnostics", "recommendations", "sentiment_service"}
    assert not (ROOT / "notebooks" / "capstone").exists()
    readme = (ROOT / "README.md").read_text()
    assert all(f"(solutions/capstone/{p.name})" in readme for p in REFERENCES)


@pytest.mark.parametrize("path", CAPSTONES, ids=lambda p: p.name)
def test_capstone_notebook_keeps_the_contract(path):
    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), "one fresh top-to-bottom run"
    assert not any(o.output_type == "error" for c in cells for o in c.outputs)
    assert not any("execution" in c.metadata for c in nb.cells), "run timestamps: use execute_notebooks.py"
    assert all(
        line.startswith(("import ", "from ")) or not line.strip() for line in cells[0].source.splitlines()
    )
    assert "\nCAPSTONE = {" in "\n" + cells[1].source, "CAPSTONE in the first code cell after the imports"
    text = "\n".join(c.source for c in cells)
    assert "name=APP, route_prefix=ROUTE" in text and "write_loadtest(APP" in text and "@serve.batch" in text
    tagged = [i for i, c in enumerate(cells) if "cleanup" in c.metadata.get("tags", [])]
    assert tagged and tagged == list(range(tagged[0], len(cells))), "cleanup cells are the last ones"
    cleanup = "\n".join(cells[i].source for i in tagged)
    assert cleanup.index("serve.shutdown()") < cleanup.index("ray.shutdown()") and "rmtree(workdir" in cleanup
    checks = [c for c in cells if "All checks passed" in c.source]
    assert checks and checks[0].source.count("assert ") >= 5
