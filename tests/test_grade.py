"""The grader (servekit/grade.py) and the hidden checks (grading/).

Fast tests need no Ray. The ``slow`` ones grade real submissions, each in a fresh kernel with its
own Ray cluster (about 3 minutes for the capstone fixtures, 2 for lesson 01's two copies on
2 cores); run them under the shared lock: ``flock /tmp/ray.lock pytest tests/test_grade.py``.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import psutil
import pytest

from servekit import grade
from servekit.paths import REPO_ROOT, SCRATCH

FIXTURES = REPO_ROOT / "tests" / "grading_fixtures"
CAPSTONE_IDS = [
    "app_running", "example_answered", "own_problem", "bad_input_4xx", "batching", "mlflow_champion_served",
    "load_error_rate_below_1pct", "loadtest_report", "cleanup_leaves_nothing",
]  # fmt: skip

# What each broken fixture must lose, and a word its reason must contain.
EXPECTED = {
    "capstone_ok": {},
    "capstone_wrong_answer": {"example_answered": "not JSON", "mlflow_champion_served": "model_version None"},
    "capstone_crash": {
        "mlflow_champion_served": "no registered version",
        "loadtest_report": "no load-test report",
    },
    "capstone_app_down": {
        "app_running": "no application 'lengths'",
        "example_answered": "404",
        "own_problem": "own example got HTTP 404",
        "bad_input_4xx": "404",
        "batching": "burst",
        "mlflow_champion_served": "model_version None",
        "load_error_rate_below_1pct": "48 errors of 48",
        "loadtest_report": "answered none of the grader's 48 requests",
    },
    "capstone_no_batching": {"batching": "is False"},
    "capstone_comment_batching": {"batching": "no function is decorated with @serve.batch"},
    "capstone_forged_loadtest": {"loadtest_report": "1000000 req/s"},
    "capstone_wrong_version": {"mlflow_champion_served": "model_version 2; alias 'champion' is version 1"},
    "capstone_infinite_loop": {"loadtest_report": "no load-test report"},
    "capstone_leaks": {"cleanup_leaves_nothing": "sleep"},
}
LOOP_LIMIT_S = 45


# ----------------------------------------------------------------------------- fast: no Ray


def test_fixtures_match_their_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.rendered().items():
        assert (FIXTURES / name).read_text() == text, f"run tests/grading_fixtures/make_fixtures.py ({name})"
    assert set(EXPECTED) | {"capstone_cheat"} == {Path(n).stem for n in module.rendered()}


@pytest.mark.parametrize("assignment", grade.available_assignments())
def test_rubric_and_checks_agree(assignment):
    rubric = grade.load_rubric(assignment)
    checks = grade.load_checks(assignment)
    assert rubric["total"] == 100 and int(rubric["assignment"]) == int(assignment)
    for item in rubric["checks"]:
        if item["id"] != grade.CLEANUP_CHECK:
            assert callable(getattr(checks, f"check_{item['id']}", None)), item["id"]
    assert grade.CLEANUP_CHECK in {c["id"] for c in rubric["checks"]}
    code = grade.probe_code(checks, "NONCE")
    compile(code, "probe", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_assignments_and_capstone_contract():
    assert {"01", "10"} <= set(grade.available_assignments())
    assert [c["id"] for c in grade.load_rubric("10")["checks"]] == CAPSTONE_IDS
    assert grade.assignment_id("1") == "01" and grade.assignment_id("10") == "10"
    with pytest.raises(ValueError):
        grade.assignment_id("../x")


@pytest.mark.parametrize(
    "path", sorted((REPO_ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name
)
def test_lessons_have_cleanup_cells_and_are_not_flagged(path):
    for nb_path in (path, REPO_ROOT / "notebooks" / path.name):
        nb = nbformat.read(nb_path, as_version=4)
        cells = grade.cleanup_cells(nb)
        assert cells, f"{nb_path.name}: the grader finds no cleanup cells"
        assert "ray.shutdown()" in nb.cells[cells[-1]].source
        assert grade.integrity_findings(nb) == [], nb_path.name


def test_cleanup_cells_rules():
    code = nbformat.v4.new_code_cell
    md = nbformat.v4.new_markdown_cell
    tagged = code("serve.shutdown()", metadata={"tags": ["cleanup"]})
    nb = nbformat.v4.new_notebook(cells=[code("a"), tagged, code("ray.shutdown()")])
    assert grade.cleanup_cells(nb) == [1, 2]
    nb = nbformat.v4.new_notebook(cells=[code("a"), md("## Cleanup\n\ntext"), code("x"), code("y")])
    assert grade.cleanup_cells(nb) == [2, 3]
    nb = nbformat.v4.new_notebook(cells=[code("a"), code("serve.shutdown()\nray.shutdown()")])
    assert grade.cleanup_cells(nb) == [1]
    assert grade.cleanup_cells(nbformat.v4.new_notebook(cells=[code("a")])) == []


def test_cleanup_starts_at_the_last_group_of_tagged_cells():
    """A cleanup cell copied to the top is an ordinary cell; the cleanup is the last tagged cells (with
    what follows them, such as scratch work at the end); a later ``## Cleanup`` heading wins."""
    code = nbformat.v4.new_code_cell
    md = nbformat.v4.new_markdown_cell

    def tagged(source="serve.shutdown()"):
        return code(source, metadata={"tags": ["cleanup"]})

    def rule(*cells):
        nb = nbformat.v4.new_notebook(cells=list(cells))
        return grade.cleanup_cells(nb), grade.cleanup_notes(nb, grade.cleanup_cells(nb))

    cells, notes = rule(tagged(), code("app"), tagged(), tagged("ray.shutdown()"))
    assert (
        cells == [2, 3]
        and len(notes) == 1
        and notes[0].startswith("Cell 0 tagged `cleanup` ran in order before")
    )
    cells, notes = rule(code("app"), tagged(), code("# nothing"), tagged(), code("requests.post(url)"))
    assert cells == [1, 2, 3, 4] and notes == [
        "Cell 4, not tagged `cleanup`, ran after the checks with the cleanup cells (from cell 1 on)."
    ]
    assert rule(tagged(), code("app"), md("## Cleanup"), code("ray.shutdown()"))[0] == [3]
    assert rule(code("app"), tagged(), md("## Clean-up"), tagged())[0] == [1, 3]
    assert rule(code("app"), md("## Cleanup"), code("serve.shutdown()"))[1] == []


def test_integrity_scan():
    code = nbformat.v4.new_code_cell

    def findings(*sources):
        return grade.integrity_findings(nbformat.v4.new_notebook(cells=[code(s) for s in sources]))

    assert findings("x = 1  # before grading, run all cells") == []
    assert findings("grading = rubric()  # the public rubric, shown in the capstone notebook") == []
    assert findings("print(f\"{grading['total']:>3}  total\")") == []
    assert findings("text = Path('grading/rubric_10.json').read_text()") == []
    assert findings("x = 1  # see checks_10") == []
    assert findings("p = REPO_ROOT / 'grading' / 'checks_10.py'")
    assert findings("import grading.checks_05")
    assert findings("open('grading/checks_10.py').read()")
    assert findings("import servekit.grade as g")
    assert findings("from servekit import cluster, grade")
    assert findings("__grader_probe = None")
    assert findings("p = REPO_ROOT / 'grad' 'ing'") == []  # obfuscation is out of reach: documented
    nb = nbformat.read(FIXTURES / "capstone_cheat.ipynb", as_version=4)
    assert any("checks_10" in f for f in grade.integrity_findings(nb))


def test_flagged_submission_is_not_run(tmp_path):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    report = grade.grade_submission(FIXTURES / "capstone_cheat.ipynb", "10", tmp_path)
    assert report.flagged and report.score == 0 and not report.execution["ran"]
    assert all(not c.passed and "flagged" in c.reason for c in report.checks)
    assert "FLAGGED" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["flagged"] is True
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_command_on_a_folder(tmp_path, capsys):
    """``python -m servekit.grade FOLDER``: a flagged submission is graded without running it."""
    submissions = tmp_path / "submissions" / "mallory"
    submissions.mkdir(parents=True)
    (submissions / "10_capstone.ipynb").write_text((FIXTURES / "capstone_cheat.ipynb").read_text())
    assert grade.main([str(submissions.parent), "--assignment", "10", "--out", str(tmp_path / "out")]) == 0
    assert "mallory: 0/100  FLAGGED" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "out" / "gradebook.csv").open()))
    assert rows[0]["student"] == "mallory" and rows[0]["flagged"] == "True"
    with pytest.raises(SystemExit):
        grade.main([str(tmp_path / "nothing"), "--assignment", "10"])
    with pytest.raises(SystemExit):
        grade.main([str(submissions.parent), "--assignment", "99"])


class FakeLive(grade.Live):
    def __init__(self, kernel, workdir, source=""):
        super().__init__(kernel, workdir, source)

    def post(self, route, body=None, raw=None, **kwargs):
        raise OSError("connection refused")


def test_live_port(tmp_path):
    assert grade.Live({"serve_port": 8123, "port": 8000}, tmp_path, "").url("/a") == "http://127.0.0.1:8123/a"
    assert grade.Live({"serve_port": None, "port": 8001}, tmp_path, "").port == 8001
    nothing = grade.Live({"serve_port": "x", "port": True}, tmp_path, "")
    assert nothing.port is None
    with pytest.raises(ConnectionError, match="Serve is not running"):
        nothing.url("/a")


def test_capstone_checks_on_missing_or_odd_data(tmp_path):
    checks = grade.load_checks("10")
    live = FakeLive({"capstone": None, "capstone_type": "NoneType"}, tmp_path)
    passed, reason = checks.check_app_running(live)
    assert not passed and "no CAPSTONE dict" in reason
    live = FakeLive({"capstone": {"app": "../etc", "route": "/x"}}, tmp_path)
    assert "must be an app name" in checks.check_loadtest_report(live)[1]
    live = FakeLive({"capstone": {"app": "a", "route": "/a", "example": {}}, "serve_apps": {}}, tmp_path)
    assert "no application 'a'" in checks.check_app_running(live)[1]
    assert "did not answer over HTTP" in checks.check_example_answered(live)[1]
    folder = tmp_path / "scratch" / "capstone" / "a"
    folder.mkdir(parents=True)
    (folder / "loadtest.json").write_text(json.dumps({"requests": 10, "errors": 1, "error_rate": True}))
    assert "lacks throughput_rps" in checks.check_loadtest_report(live)[1]
    figures = {"requests": 100, "errors": 2, "error_rate": 0.02, "throughput_rps": 5, "p50_ms": 1}
    (folder / "loadtest.json").write_text(json.dumps(figures | {"p95_ms": 2, "p99_ms": 3}))
    passed, reason = checks.check_loadtest_report(live)  # the report is read, then compared with a run
    assert not passed and "answered none of the grader's 48 requests: OSError x48" in reason
    assert "(first: OSError: connection refused)" in reason
    passed, reason = checks.check_load_error_rate_below_1pct(live)
    assert not passed and "48 errors of 48" in reason and "connection refused" in reason
    live = FakeLive({"capstone": {"app": "a", "route": "/a", "mlflow_model": "m"}}, tmp_path)
    assert "mlflow is not imported" in checks.check_mlflow_champion_served(live)[1]
    assert checks.resolve_registry_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    live.kernel["mlflow_tracking_uri"] = "sqlite:///mlflow.db"
    assert "no registered version" in checks.check_mlflow_champion_served(live)[1]
    live = FakeLive({"capstone": {"batching": True}}, tmp_path, source="class A:\n    pass")
    assert "no function is decorated with @serve.batch" in checks.check_batching(live)[1]


def test_batching_needs_a_real_decorator_and_batches_seen_in_the_burst(tmp_path):
    checks = grade.load_checks("10")
    real = "class A:\n    @serve.batch(max_batch_size=8)\n    async def f(self, xs):\n        return xs"
    commented = real.replace("    @serve.batch", "    # @serve.batch")
    in_a_string = f"text = {real!r}"
    magic = "%%time\nx = 1"
    assert checks.batch_decorated([magic, real]) == ["f"]
    assert checks.batch_decorated([commented]) == checks.batch_decorated([in_a_string, magic]) == []
    assert checks.batch_decorated(
        ["from ray.serve import batch\n@batch\nasync def g(xs):\n    return xs"]
    ) == ["g"]
    kernel = {"capstone": {"batching": True}, "burst_statuses": [200] * 16}
    for sizes, verdict in (([8, 8], True), ([1] * 16, "none larger than 1"), ([], "none larger than 1")):
        live = FakeLive(kernel | {"burst_batch_sizes": sizes}, tmp_path, source=real)
        live.code_cells = [real]
        passed, reason = checks.check_batching(live)
        assert passed is (verdict is True) and (verdict is True or verdict in reason), reason
    live = FakeLive(kernel | {"burst_statuses": [200] * 15 + [500], "burst_batch_sizes": [8, 8]}, tmp_path)
    live.code_cells = [real]
    assert "got ['200'" in checks.check_batching(live)[1]
    live = FakeLive(kernel | {"batch_sizes_error": "AttributeError: batch_sizes_seen"}, tmp_path)
    live.code_cells = [real]
    assert "batch_sizes_seen() (the contract) gave no batch sizes" in checks.check_batching(live)[1]


def test_report_markdown_and_gradebook(tmp_path):
    checks = [grade.CheckResult("a", 10, 10, True, "fine | ok"), grade.CheckResult("b", 0, 5, False, "broke")]
    report = grade.Report("alice", "alice.ipynb", "10", "Capstone", score=10, total=15, checks=checks)
    report.execution = {
        "ran": True,
        "cells_run": 3,
        "error": {"cell": 4, "ename": "KeyError", "evalue": "'x'"},
    }
    text = report.to_markdown()
    assert "**Score: 10 / 15**" in text and "Cell 4 stopped the notebook: `KeyError: 'x'`" in text
    assert "fine \\| ok" in text
    grade.write_gradebook([report], tmp_path / "gradebook.csv")
    rows = list(csv.DictReader((tmp_path / "gradebook.csv").open()))
    assert rows[0]["student"] == "alice" and rows[0]["a"] == "10" and rows[0]["b"] == "0"
    # A kernel's JSON may carry a lone surrogate (an exception message, say): written escaped.
    report.execution["error"]["evalue"] = "bad \udcff byte"
    report.notebook = "odd \udcff.ipynb"
    report.write(tmp_path / "odd")
    assert "bad \\udcff byte" in (tmp_path / "odd" / "report.md").read_text(encoding="utf-8")
    grade.write_gradebook([report], tmp_path / "gradebook.csv")
    assert "odd \\udcff.ipynb" in (tmp_path / "gradebook.csv").read_text(encoding="utf-8")


class _Answer:
    def __init__(self, status_code: int, body: dict | None):
        self.status_code, self._body = status_code, body
        self.text = json.dumps(body) if body is not None else "<html>oops</html>"

    def json(self):
        if self._body is None:
            raise ValueError("not JSON")
        return self._body


@pytest.mark.parametrize(
    ("answers", "verdict"),
    [
        (
            [(400, {"error": "not JSON"}), (422, {"error": "text is missing"}), (200, {"label": "positive"})],
            None,
        ),
        ([(500, {"error": "boom"}), (422, {"error": "x"}), (200, {})], "bad: HTTP 500"),
        ([(400, None), (422, {"error": "x"}), (200, {})], "bad: HTTP 400 <html>"),  # no error message
        ([(400, {"error": ""}), (422, {"error": "x"}), (200, {})], "bad: HTTP 400"),  # an empty one
        ([(400, {"error": "x"}), (400, {"error": "x"}), (200, {})], "missing: HTTP 400"),  # wrong 4xx
        ([(400, {"error": "x"}), (422, {"error": "x"}), (503, {})], "a good one got HTTP 503"),  # app broke
    ],
)
def test_bad_then_good_fails_every_wrong_service(monkeypatch, tmp_path, answers, verdict):
    from servekit.grader.rubric import Live

    sent = iter(answers)
    monkeypatch.setattr(Live, "post", lambda self, route, body=None, **kw: _Answer(*next(sent)))
    live = Live(kernel={"port": 8000}, workdir=tmp_path, source="")
    cases = {"bad": (dict(raw="{"), 400), "missing": (dict(body={}), 422)}
    passed, reason = live.bad_then_good("/x", cases, dict(body={"text": "hi"}))
    assert passed is (verdict is None), reason
    if verdict:
        assert verdict in reason
    else:
        assert reason == "statuses {'bad': 400, 'missing': 422}; the app kept serving"


def test_count_names():
    assert grade._count_names(["12 raylet", "13 ray::IDLE", "14 ray::IDLE"]) == "ray::IDLE x2, raylet"


def test_find_submissions(tmp_path):
    (tmp_path / "alice.ipynb").write_text("{}")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "10_capstone.ipynb").write_text("{}")
    (tmp_path / "bob" / "scratchpad.ipynb").write_text("{}")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "x.ipynb").write_text("{}")
    found = grade.find_submissions(tmp_path, "10")
    assert [(s, p.name) for s, p in found] == [("alice", "alice.ipynb"), ("bob", "10_capstone.ipynb")]


def test_printable_names():
    assert grade.printable(os.fsdecode(b"stud\xffent")) == "stud\\xffent"
    assert grade.printable("al\nice\u00e9") == "al\\nice\u00e9"
    assert grade.printable("\ud800") == "\\ud800"  # a lone surrogate that no file system gave


def test_a_grader_failure_on_one_submission_does_not_stop_the_folder(tmp_path, monkeypatch, capsys):
    """The last resort: an exception from grading one submission (a grader bug) is reported for that
    submission, and the next is graded."""
    from servekit.grader import cli

    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("alice", "mallory"):
        (subs / f"{name}.ipynb").write_text((FIXTURES / "capstone_cheat.ipynb").read_text())
    real = cli.grade_submission

    def buggy(nb, *args):
        if nb.stem == "alice":
            raise RuntimeError("a grader bug")
        return real(nb, *args)

    monkeypatch.setattr(cli, "grade_submission", buggy)
    reports = grade.grade_folder(subs, "10", tmp_path / "out")
    assert [r.student for r in reports] == ["alice", "mallory"] and reports[1].flagged
    assert "a grader bug" in reports[0].not_gradeable and reports[0].score == 0
    assert "RuntimeError: a grader bug" in (tmp_path / "out" / "alice" / "report.md").read_text()
    assert "a grader bug" in capsys.readouterr().err


# ----------------------------------------------------------------------------- a kernel, no Ray


def _notebook(path: Path, *cells: str, cleanup: str = "print('bye')") -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.cells.append(nbformat.v4.new_code_cell(cleanup, metadata={"tags": ["cleanup"]}))
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, path)
    return path


def _run_worker(tmp_path: Path, *cells: str, probe: str = "pass", cleanup: str = "print('bye')") -> dict:
    """The worker's notebook run, in this process, on a tiny notebook (a real kernel, no Ray), with
    ``probe`` as the checks' PROBE: the messages it sent, by phase."""
    import asyncio
    from types import SimpleNamespace

    from servekit.grader import job, worker

    nb = nbformat.read(_notebook(tmp_path / "nb.ipynb", *cells, cleanup=cleanup), as_version=4)
    limits = grade.Limits(timeout_s=60, probe_timeout_s=60)
    work = job.make_job(nb, tmp_path, grade.cleanup_cells(nb), SimpleNamespace(PROBE=probe), limits)
    sent: dict = {}
    asyncio.run(worker._run_notebook(work, lambda phase, **data: sent.setdefault(phase, data), lambda: None))
    return sent


def _probe_seen(sent: dict) -> dict:
    return grade.parse_probe(sent["live"]["probe"], sent["live"]["state"])


# A thread that prints a live status line without newlines, every 2 ms while the injected cell runs.
STATUS_THREAD = """
import threading, time
stop = threading.Event()
def status():
    while not stop.is_set():
        if '__grader_probe' in globals():
            print('status...', end='', flush=True)
        time.sleep(0.002)
threading.Thread(target=status, daemon=True).start()
"""


def test_probe_output_is_found_after_a_threads_status_line(tmp_path):
    """The nonce lands in the middle of a line of the thread's output: the JSON after it is still read,
    and the probe finds no port without failing (the notebook did not import servekit)."""
    slow = (  # the thread prints meanwhile
        "import asyncio, sys\nawait asyncio.sleep(0.3)\nout['answer'] = 42\n"
        "out['kit_imported'] = 'servekit' in sys.modules"
    )
    sent = _run_worker(tmp_path, STATUS_THREAD, probe=slow, cleanup="stop.set()")
    seen = _probe_seen(sent)
    assert seen.get("answer") == 42, seen
    assert seen["port"] is None and "port_error" not in seen
    assert seen["kit_imported"] is False, "the probe imported servekit into the submission's kernel"


def test_probe_text_anywhere_in_the_stream():
    nonce = "N0NCE"
    found = [
        grade.parse_probe(grade.probe_text(text, nonce), {})
        for text in (
            f'{nonce}{{"a": 1}}\n',
            f'status...status...{nonce}{{"a": 1}}status...\nstatus...',  # mid-line, text right after
            f'status...\n{nonce}{{"a": 1, "s": "}}{nonce}"}}\n\n',
        )
    ]
    assert [d.get("a") for d in found] == [1, 1, 1], found
    assert grade.probe_text("status...\n", nonce) is None
    stream = [
        {"output_type": "stream", "name": "stdout", "text": f'status...{nonce}{{"a": '},
        {"output_type": "stream", "name": "stderr", "text": "10%|#"},  # a progress bar, between the two
        {"output_type": "stream", "name": "stdout", "text": "1}\nstatus..."},
    ]
    assert grade.parse_probe(grade.probe_output(stream, nonce), {}) == {"a": 1}
    assert "probe_missing" in grade.parse_probe(grade.probe_text("no json " + nonce + " {", nonce), {})
    big = nonce + json.dumps({"x": "y" * grade.MAX_PROBE_CHARS})
    assert len(grade.probe_text(big, nonce)) == grade.MAX_PROBE_CHARS
    assert "probe_missing" in grade.parse_probe(grade.probe_text(big, nonce), {})


def test_probe_reads_the_port_start_serve_chose(tmp_path):
    """Through ``servekit.serve_port()``: Serve's own start is replaced here (no Ray), the port is the
    kit's choice."""
    start = (
        "import servekit\nfrom ray import serve\nserve.start = lambda **kw: None\n"
        "chosen = servekit.start_serve(servekit.free_port(18123))"
    )
    sent = _run_worker(tmp_path, start, probe="out['chosen'] = chosen")
    seen = _probe_seen(sent)
    assert seen["port"] == seen["chosen"] and isinstance(seen["port"], int), seen
    assert "._state" not in grade.probe_code(object(), "N"), "the probe reads the kit's private state"


def test_report_says_which_cells_ran_before_and_after_the_checks(tmp_path):
    """No Ray: an early cell tagged cleanup runs in order, so the checks see what the cells after it
    made (the CAPSTONE dict here); the report lists the cells on each side of the checks."""
    code = nbformat.v4.new_code_cell
    cells = [
        code("print('stop an earlier run')", metadata={"tags": ["cleanup"]}),
        code("CAPSTONE = {'app': 'early', 'route': '/early'}"),
        code("print('bye')", metadata={"tags": ["cleanup"]}),
        code("print('scratch work')"),
    ]
    path = tmp_path / "early.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    report = grade.grade_submission(path, "10", tmp_path / "out", grade.Limits(timeout_s=30, grace_s=1))
    reasons = {c.id: c.reason for c in report.checks}
    assert "no application 'early'" in reasons["app_running"], reasons["app_running"]
    ex = report.execution
    assert (ex["before_checks"], ex["after_checks"], ex["cleanup_cells"]) == ([0, 1], [2, 3], [2, 3])
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Before the checks, code cells 0-1 ran, in order." in text
    assert "After the checks, the cleanup cells 2-3 ran." in text
    assert "Cell 0 tagged `cleanup` ran in order before the checks" in text
    assert "Cell 3, not tagged `cleanup`, ran after the checks" in text


def test_malformed_submissions_get_a_report_each_and_the_rest_are_graded(tmp_path):
    """A code cell without ``source``, a file that is not JSON, a file and a folder whose names are not
    UTF-8: each gets its own "not gradeable" report, with a printable name in the gradebook, and the
    command (its output strict UTF-8, as in a terminal) grades the next submission."""
    import subprocess
    import sys

    subs = tmp_path / "subs"
    subs.mkdir()
    ok = nbformat.writes(nbformat.read(_notebook(tmp_path / "ok.ipynb", "x = 1"), as_version=4))
    broken = json.loads(ok)
    del broken["cells"][0]["source"]
    (subs / "a_no_source.ipynb").write_text(json.dumps(broken))
    (subs / "b_not_json.ipynb").write_text("{")
    raw = os.fsencode(subs)
    with open(os.path.join(raw, b"c_stud\xffent.ipynb"), "w") as f:
        f.write(ok)
    os.mkdir(os.path.join(raw, b"e_\xfffolder"))
    with open(os.path.join(raw, b"e_\xfffolder", b"10_capstone.ipynb"), "w") as f:
        f.write(ok)
    (subs / "d_ok.ipynb").write_text(ok)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "servekit.grade", str(subs), "--assignment", "10", "--out", str(out)]
    env = os.environ | {"PYTHONIOENCODING": "utf-8:strict"}  # as in a UTF-8 terminal
    done = subprocess.run(cmd, capture_output=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    why = {
        "a_no_source": "the file breaks the notebook format: 'source' is a required property (at cells[0])",
        "b_not_json": "not a readable notebook: NotJSONError",
        "c_stud\\xffent": "its name, c_stud\\xffent, is not valid UTF-8 text",
        "e_\\xfffolder": "its name, e_\\xfffolder, is not valid UTF-8 text",
    }
    for student, reason in why.items():
        report = json.loads((out / student / "report.json").read_text())
        assert report["score"] == 0 and report["not_gradeable"].startswith(reason), report["not_gradeable"]
        assert f"not gradeable: {reason}" in (out / student / "report.md").read_text(encoding="utf-8")
    rows = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open(encoding="utf-8"))}
    assert set(rows) == {*why, "d_ok"}
    assert rows["d_ok"]["not_gradeable"] == "" and rows["d_ok"][grade.CLEANUP_CHECK] == "15", rows["d_ok"]
    assert all(rows[s]["not_gradeable"].startswith(reason) for s, reason in why.items())
    assert "c_stud\\xffent: 0/100  NOT GRADEABLE" in done.stdout.decode()


def test_kernel_that_ignores_interrupts_is_killed_at_the_limit(tmp_path):
    """No Ray: a cell that ignores SIGINT cannot be interrupted; the grader kills the kernel at the
    limit plus its margin, fails every check with that reason, and leaves nothing running."""
    stuck = _notebook(
        tmp_path / "stuck.ipynb",
        "import signal, subprocess, time\nhelper = subprocess.Popen(['sleep', '600'], start_new_session=1)",
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)",
    )
    before, dirs = _descendants(), _grading_dirs()
    limits = grade.Limits(timeout_s=4, probe_timeout_s=2, kill_margin_s=2, grace_s=1)
    report = grade.grade_submission(stuck, "10", tmp_path / "out", limits)
    assert report.score == 0 and "killed at the whole-notebook limit (4 s)" in report.checks[-1].reason
    assert report.execution["error"]["cell"] == 1 and report.execution["cells_run"] == 1
    assert report.seconds < 60
    assert any("sleep" in p for p in report.leftovers), report.leftovers
    assert report.teardown_clean
    assert _descendants() <= before and _grading_dirs() <= dirs


def test_leftover_process_fails_cleanup_check(tmp_path):
    """No Ray: a process the notebook starts and its cleanup cell does not stop costs the cleanup
    points; one it stops does not; a cell marked NBVAL_SKIP does not run."""
    before = _descendants()
    leaky = _notebook(
        tmp_path / "leaky.ipynb", "import subprocess\nhelper = subprocess.Popen(['sleep', '600'])"
    )
    tidy = _notebook(
        tmp_path / "tidy.ipynb",
        "import subprocess\nhelper = subprocess.Popen(['sleep', '600'])",
        "# NBVAL_SKIP\nother = subprocess.Popen(['sleep', '600'])  # optional: the grader skips it",
        cleanup="helper.terminate()\nhelper.wait()",
    )
    limits = grade.Limits(timeout_s=30, grace_s=1)
    results = {}
    for nb in (leaky, tidy):
        report = grade.grade_submission(nb, "10", tmp_path / nb.stem, limits)
        results[nb.stem] = {c.id: c for c in report.checks}[grade.CLEANUP_CHECK]
    assert not results["leaky"].passed and "sleep" in results["leaky"].reason
    assert results["tidy"].passed, results["tidy"].reason
    assert report.execution["skipped"] == [1]
    assert _descendants() <= before


def test_tampering_at_run_time_is_flagged(tmp_path):
    """No Ray: a submission that hides the name and appends to the hidden checks while it runs is
    caught by the checksums: flagged, 0."""
    import shutil

    hidden = tmp_path / "hidden"
    shutil.copytree(REPO_ROOT / "grading", hidden, ignore=shutil.ignore_patterns("__pycache__"))
    target = f"{hidden}/" + "' + 'checks' + '_10.py"
    sneaky = _notebook(tmp_path / "sneaky.ipynb", f"open('{target}', 'a').write('\\n# all pass\\n')")
    assert grade.integrity_findings(nbformat.read(sneaky, as_version=4)) == []
    report = grade.grade_submission(
        sneaky, "10", tmp_path / "out", grade.Limits(timeout_s=30), grading_dir=hidden
    )
    assert report.flagged and report.score == 0
    assert any("changed while it ran" in f and "_10.py" in f for f in report.integrity), report.integrity


# ----------------------------------------------------------------------------- slow: real runs


def _descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


def _grading_dirs() -> set[str]:
    """The grader's work folders and the kit's stale /tmp session folders (whose cluster is gone: a live
    one may be another run's on this machine)."""
    from servekit.cleanup import stale_temp_dirs

    return {str(p) for p in [*(SCRATCH / "grading").glob("*"), *stale_temp_dirs()]}


@contextlib.contextmanager
def cpu_burner(seconds: float):
    """Other work on the machine: one busy-looping process per two cores, each ending by itself after
    ``seconds`` and stopped by PID when the block ends (a grade must not depend on how busy it is)."""
    loop = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    burners = [
        subprocess.Popen([sys.executable, "-c", loop]) for _ in range(max(1, (os.cpu_count() or 2) // 2))
    ]
    try:
        yield burners
    finally:
        for p in burners:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def capstone_reports(tmp_path_factory):
    """Grade the fixture folder once (the whole-notebook limit small, for the infinite loop), with the
    machine kept busy by a CPU burner the whole time."""
    out = tmp_path_factory.mktemp("capstone-grades")
    with cpu_burner(seconds=900) as burners:
        before, dirs = _descendants(), _grading_dirs()
        limits = grade.Limits(timeout_s=LOOP_LIMIT_S, cell_timeout_s=LOOP_LIMIT_S, grace_s=8)
        reports = {r.student: r for r in grade.grade_folder(FIXTURES, "10", out, limits)}
        assert all(p.poll() is None for p in burners), "the machine was busy through the whole folder run"
    assert _descendants() <= before, "a grading run left processes behind"
    assert _grading_dirs() <= dirs, "a grading run left its work folder behind"
    return out, reports


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPECTED))
def test_capstone_fixture_scores(capstone_reports, name):
    out, reports = capstone_reports
    report = reports[name]
    lost = EXPECTED[name]
    failed = {c.id: c.reason for c in report.checks if not c.passed}
    assert set(failed) == set(lost), failed
    for check, word in lost.items():
        assert word in failed[check], (check, failed[check])
    points = {c["id"]: c["points"] for c in grade.load_rubric("10")["checks"]}
    assert report.score == 100 - sum(points[c] for c in lost)
    assert not report.flagged and report.teardown_clean, report.execution
    assert (out / name / "report.md").exists() and (out / name / "executed.ipynb").exists()


@pytest.mark.slow
def test_capstone_details(capstone_reports):
    out, reports = capstone_reports
    assert reports["capstone_cheat"].flagged and reports["capstone_cheat"].score == 0
    crash = reports["capstone_crash"].execution["error"]
    assert crash["ename"] == "KeyError"
    for name in ("capstone_ok", "capstone_crash", "capstone_wrong_answer"):  # their app stays up
        assert reports[name].execution["app_ready"]["ready"], (name, reports[name].execution)
    down = reports["capstone_app_down"].execution["app_ready"]
    assert not down["ready"] and down["waited_s"] == 0, down  # deleted: nothing to wait for
    loop = reports["capstone_infinite_loop"]
    assert loop.execution.get("timed_out") and f"{LOOP_LIMIT_S} s limit" in loop.execution["error"]["evalue"]
    assert loop.seconds < LOOP_LIMIT_S + 60, "the loop stopped at the limit, then checks and cleanup ran"
    assert any("sleep" in p for p in reports["capstone_leaks"].leftovers)
    assert any(re.search(r"raylet|gcs_server", p) for p in reports["capstone_leaks"].leftovers)
    rows = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert rows["capstone_ok"]["score"] == "100" and rows["capstone_cheat"]["flagged"] == "True"
    executed = nbformat.read(out / "capstone_ok" / "executed.ipynb", as_version=4)
    assert not any("__grader" in c.source for c in executed.cells), "the hidden probe is not handed back"


# A lab graded as submitted: (assignment, notebook, folder) -> the checks it loses, each with a
# phrase its reason must hold, and the NotImplementedErrors its learner cells are allowed to raise.
LABS = {
    ("01", "01_first_deployment.ipynb", "solutions"): ({}, 0),
    (
        "01",
        "01_first_deployment.ipynb",
        "notebooks",
    ): (
        {
            "ex1_classify_many": "NotImplementedError",
            "ex2_tweet_limit": "281 characters got HTTP 200",
            "ex2_half_cpu": "1.0 of 2 CPUs free",
        },
        2,
    ),
    ("11", "11_llm_serving.ipynb", "solutions"): ({}, 0),
    ("11", "11_llm_serving.ipynb", "notebooks"): ({"ex_stream_text": "NotImplementedError"}, 1),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("assignment", "notebook", "folder"), list(LABS), ids=[f"{a}-{f}" for a, _, f in LABS]
)
def test_lab_graded(tmp_path, assignment, notebook, folder):
    """A solution gets every point; its learner copy loses exactly its exercises' checks and their
    points (rubric), for the reason each exercise left undone gives, and nothing is left running."""
    lost, allowed = LABS[(assignment, notebook, folder)]
    before, dirs = _descendants(), _grading_dirs()
    report = grade.grade_submission(REPO_ROOT / folder / notebook, assignment, tmp_path)
    failed = {c.id: c.reason for c in report.checks if not c.passed}
    assert set(failed) == set(lost), failed
    for check, phrase in lost.items():
        assert phrase in failed[check], (check, failed[check])
    raised = [e["ename"] for e in report.execution.get("allowed_errors", [])]
    assert raised == ["NotImplementedError"] * allowed
    worth = {c.id: c.max_points for c in report.checks}
    assert sum(worth.values()) == 100 and all(c.points == 0 for c in report.checks if c.id in lost)
    assert report.score == 100 - sum(worth[c] for c in lost)  # 45 for lesson 01's copy, 25 for 11's
    assert _descendants() <= before and _grading_dirs() <= dirs


CAPSTONE_REFERENCES = sorted(
    [*(REPO_ROOT / "solutions").glob("10_*.ipynb"), *(REPO_ROOT / "solutions" / "capstone").glob("*.ipynb")]
)


@pytest.mark.slow
@pytest.mark.skipif(not CAPSTONE_REFERENCES, reason="no capstone reference solutions in solutions/")
@pytest.mark.parametrize("path", CAPSTONE_REFERENCES, ids=lambda p: p.name)
def test_capstone_references_score_full_marks(tmp_path, path):
    """Each capstone reference solution (about 40-60 s each on 2 cores) gets every point; the starter
    (iris, solutions/10) every point but its own problem's."""
    before, dirs = _descendants(), _grading_dirs()
    report = grade.grade_submission(path, "10", tmp_path)
    failed = {c.id: c.reason for c in report.checks if not c.passed}
    if path.name == "10_capstone.ipynb":
        assert set(failed) == {"own_problem"} and "iris" in failed["own_problem"], failed
        assert report.score == 90
    else:
        assert report.score == 100, failed
    assert not report.flagged and report.teardown_clean
    assert _descendants() <= before and _grading_dirs() <= dirs


def test_bad_then_good_takes_a_range_of_statuses_and_reads_the_error_where_told(monkeypatch, tmp_path):
    from servekit.grader.rubric import Live, error_message

    def verdict(answers, error_at):
        sent = iter(answers)
        monkeypatch.setattr(Live, "post", lambda self, route, body=None, **kw: _Answer(*next(sent)))
        live = Live(kernel={"port": 8000}, workdir=tmp_path, source="")
        cases = {"bad": (dict(raw="{"), range(400, 500))}
        return live.bad_then_good("/x", cases, dict(body={"text": "hi"}), error_at=error_at)

    assert verdict([(413, {"detail": "too big"}), (200, {})], ()) == (
        True,
        "statuses {'bad': 413}; the app kept serving",
    )
    assert "expected a 4xx" in verdict([(500, {"error": "boom"}), (200, {})], ())[1]
    assert "expected a 4xx" in verdict([(302, {"error": "moved"}), (200, {})], ())[1]
    assert "no error at a JSON body" in verdict([(400, None), (200, {})], ())[1]
    assert "no error at a JSON body" in verdict([(400, {}), (200, {})], ())[1]
    openai_style = {"error": {"message": "max_tokens is over 256", "type": "invalid_request_error"}}
    assert verdict([(400, openai_style), (200, {})], ("error", "message"))[0]
    assert (
        "no error at ['error']['message']"
        in verdict([(400, {"error": "flat"}), (200, {})], ("error", "message"))[1]
    )
    assert error_message(_Answer(400, {"error": "flat"}), "error") == "flat"
    assert error_message(_Answer(400, {"error": {"message": ""}}), "error", "message") == ""
    assert error_message(_Answer(400, [1]), "error") == ""


def test_registry_facts_give_the_champions_flavors_or_why_it_is_no_model(tmp_path, monkeypatch):
    """capstone_ok once scored the registry's points with a "version" whose source is an empty folder."""
    import mlflow

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    checks = grade.load_checks("10")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    (tmp_path / "empty").mkdir()
    client.create_model_version("m", source=str(tmp_path / "empty"))
    client.set_registered_model_alias("m", "champion", "1")
    facts = checks.registry_facts(uri, "m")
    assert (facts["versions"], facts["champion"], facts["flavors"]) == (["1"], "1", []), facts
    assert "MLmodel" in facts["model_error"], facts

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    mlflow.pyfunc.save_model(tmp_path / "saved", python_model=Echo(), pip_requirements=[])
    client.create_model_version("m", source=str(tmp_path / "saved"))
    client.set_registered_model_alias("m", "champion", "2")
    facts = checks.registry_facts(uri, "m")
    assert facts["champion"] == "2" and "python_function" in facts["flavors"], facts
    assert facts["model_error"] is None
