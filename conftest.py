"""What every test run gets, notebooks and tests alike.

Tiers. Every item is marked with one of ``unit``, ``live`` or ``notebook`` (the table below; a
module may also set ``pytestmark`` or mark a test itself), so that ``make test-fast`` (``-m unit``)
is the inner loop and a test nobody sorted cannot hide in it: an item without a tier stops the
collection with its name.

Guard for notebook runs: no process a notebook's kernel started may outlive the notebook.
Each notebook under nbval runs in its own kernel, a child of pytest. This process becomes a
"child subreaper", so that anything the kernel left running (raylet, gcs_server, Serve
replicas, a server the notebook forgot) stays our descendant even after the kernel exits.
When the last cell of a notebook has run and nbval has shut its kernel down, every
descendant still alive is a leftover: we stop it by PID (never by name, which would hit a
learner's other Ray clusters) and fail the notebook's last cell, so a leak cannot pass. Then the
session folders in /tmp and the registry files of clusters that are gone are removed.

Memory: each notebook's kernel, and so everything it starts, runs in a 2 GiB memory cgroup without
swap, as on Binder (servekit/nbval_memcap.py, installed below); an out-of-memory kill fails the
notebook, and each notebook's peak is printed at the end of the run.

A notebook that "passed in 0 s" fails too: its cells' run times are summed, and a total under
NOTEBOOK_FLOOR_S (every course notebook starts Ray, ~15 s at the least) means it ran nothing real.
The sums are printed at the end of the run, one line per notebook.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from servekit import nbval_noise
from servekit.cleanup import become_subreaper, reap_leftovers, remove_stale

# Binder's 2 GiB around every notebook's kernel and all it starts (servekit/nbval_memcap.py)
pytest_plugins = ["servekit.nbval_memcap"]

TIERS = ("unit", "live", "notebook")
# unit:     no Ray cluster, no kernel, no server process. In-process stand-ins are fine (Serve's local
#           testing mode, FastAPI's TestClient, a stdlib HTTP server on a thread, an SQLite MLflow
#           registry, Ray's functions monkeypatched), and so are child processes that end within
#           the test (ruff, pip, in_child, a `sleep` the test stops by PID).
# live:     starts a Ray/Serve cluster, a Jupyter kernel (the grader, nbval in a subprocess),
#           JupyterLab, an MLflow or uvicorn server, or Locust.
# notebook: nbval's items, one per cell of every collected .ipynb file (marked by their file type).
# A module whose tests are all of one tier names it; a module that mixes names every test function
# (parameters aside), so that a new test there fails collection until it gets its tier too.
MODULE_TIERS: dict[str, str | dict[str, list[str]]] = {
    "test_capstone_notebooks.py": "unit",
    "test_environment_files.py": "unit",
    "test_fuzz_capstone.py": "live",
    "test_fuzz_lesson06.py": "live",
    "test_fuzz_lesson08.py": "live",
    "test_fuzz_lesson08_multiplex.py": {
        "unit": ["test_the_router_strips_only_http_whitespace_from_a_pinned_version"],
        "live": [
            "test_any_multiplexed_model_id_header_gets_its_version_or_a_404",
            "test_a_header_value_that_is_not_utf8",
        ],
    },
    "test_fuzz_lesson09.py": "live",
    "test_fuzz_lessons.py": "live",
    "test_grader_ready.py": "unit",
    "test_grade.py": {
        "unit": [
            "test_fixtures_match_their_generator",
            "test_rubric_and_checks_agree",
            "test_assignments_and_capstone_contract",
            "test_lessons_have_cleanup_cells_and_are_not_flagged",
            "test_cleanup_cells_rules",
            "test_integrity_scan",
            "test_flagged_submission_is_not_run",
            "test_command_on_a_folder",
            "test_live_port",
            "test_capstone_checks_on_missing_or_odd_data",
            "test_batching_needs_a_real_decorator_and_batches_seen_in_the_burst",
            "test_report_markdown_and_gradebook",
            "test_count_names",
            "test_bad_then_good_fails_every_wrong_service",
            "test_bad_then_good_takes_a_range_of_statuses_and_reads_the_error_where_told",
            "test_find_submissions",
            "test_cleanup_starts_at_the_last_group_of_tagged_cells",
            "test_printable_names",
            "test_probe_text_anywhere_in_the_stream",
            "test_a_grader_failure_on_one_submission_does_not_stop_the_folder",  # flagged: never runs
        ],
        "live": [  # the grader runs each notebook in a Jupyter kernel
            "test_registry_facts_give_the_champions_flavors_or_why_it_is_no_model",
            "test_kernel_that_ignores_interrupts_is_killed_at_the_limit",
            "test_leftover_process_fails_cleanup_check",
            "test_tampering_at_run_time_is_flagged",
            "test_capstone_fixture_scores",
            "test_capstone_details",
            "test_lab_graded",
            "test_capstone_references_score_full_marks",
            "test_probe_output_is_found_after_a_threads_status_line",
            "test_probe_reads_the_port_start_serve_chose",
            "test_report_says_which_cells_ran_before_and_after_the_checks",
            "test_malformed_submissions_get_a_report_each_and_the_rest_are_graded",
        ],
    },
    "test_lesson04_ray_facts.py": "unit",
    "test_lesson06_app.py": "unit",
    "test_lesson07_app.py": "unit",
    "test_lesson08_app.py": "unit",
    "test_lesson11_app.py": "live",
    "test_lesson09_app.py": "unit",
    "test_lessons03_05_ray_facts.py": "unit",
    "test_locustfile.py": "live",
    "test_make_lab.py": "live",
    "test_modes_notebook_cells.py": "live",
    "test_nbval_canary.py": "live",
    "test_notebooks.py": "unit",
    "test_packaging.py": "unit",
    "test_rayservice_manifest.py": "unit",
    "test_sanitizer.py": "unit",
    "test_notebook_cells.py": "unit",
    "test_scratch_rerun.py": "unit",
    "test_servekit_backends.py": "unit",
    "test_servekit_child.py": "unit",
    "test_servekit_cleanup_killed_kernel.py": "live",
    "test_servekit_cluster.py": "unit",
    "test_servekit_contract.py": "unit",
    "test_servekit_cpu_modes.py": "unit",
    "test_servekit_helpers.py": "unit",
    "test_servekit_in_flight.py": "unit",
    "test_servekit_lean.py": {
        "unit": ["test_ray_init_gets_lean_params_only_while_it_runs"],
        "live": ["test_a_lean_cluster_runs_without_them_and_serves"],
    },
    "test_servekit_load.py": "unit",
    "test_servekit_loopback.py": {
        "unit": [
            "test_the_switch_is_set_only_while_ray_init_runs",
            "test_on_another_ray_the_patches_warn_and_leave_ray_alone",
            "test_ray_start_commands_never_inherit_the_switch",
        ],
        "live": ["test_a_course_cluster_listens_on_loopback_but_for_replica_grpc"],
    },
    "test_servekit_mlflow_server.py": "live",
    "test_servekit_models.py": "unit",
    "test_servekit_prom.py": "unit",
    "test_servekit_node_start.py": "unit",
    "test_servekit_ray_cluster.py": "live",
    "test_servekit_retry.py": "unit",
    "test_servekit_rollout.py": "unit",
    "test_servekit_sockets.py": "unit",
    "test_servekit_uvicorn.py": "live",
    "test_wrong_answers.py": "unit",
    "test_style.py": "unit",
    "test_suite_hooks.py": "unit",
}
NOTEBOOK_FLOOR_S = 1.0
_CLOCK = pytest.StashKey["NotebookClock"]()


def pytest_configure(config: pytest.Config) -> None:
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: test tier (see the root conftest.py)")
    config.stash[_CLOCK] = NotebookClock()
    become_subreaper()
    nbval_noise.install()  # a stream the sanitizer empties entirely is no output (its docstring)


def tier_of(path: Path, function: str, marked: set[str]) -> set[str]:
    """The tiers an item has: its own tier marks, plus the table's entry for its module."""
    if path.suffix == ".ipynb":
        return marked | {"notebook"}
    entry = MODULE_TIERS.get(path.name)
    if isinstance(entry, str):
        return marked | {entry}
    listed = {tier for tier, names in (entry or {}).items() if function in names}
    return marked | listed


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unsorted = []
    for item in items:
        marked = {tier for tier in TIERS if item.get_closest_marker(tier)}
        tiers = tier_of(item.path, getattr(item, "originalname", item.name), marked)
        if len(tiers) != 1:
            unsorted.append(f"{item.nodeid}: {sorted(tiers) or 'no tier'}")
            continue
        (tier,) = tiers
        if tier not in marked:
            item.add_marker(tier)
    if unsorted:
        raise pytest.UsageError(
            "each test needs exactly one tier (unit, live or notebook): add it to MODULE_TIERS in the "
            "root conftest.py or mark it\n  " + "\n  ".join(unsorted)
        )


# ----------------------------------------------------------------------------- notebook runs


def _is_notebook_item(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb"


def _notebook(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


class NotebookClock:
    """Each notebook's cell run times, summed; a notebook whose cells took under ``floor_s`` in all ran
    nothing real. Notebooks that already failed, or ran only in part (-k, -m), are not judged."""

    def __init__(self, floor_s: float = NOTEBOOK_FLOOR_S) -> None:
        self.floor_s = floor_s
        self.seconds: dict[str, float] = defaultdict(float)
        self.failed: set[str] = set()
        self.partial: set[str] = set()

    def record(self, notebook: str, when: str, duration: float, failed: bool) -> None:
        if when == "call":
            self.seconds[notebook] += duration
        if failed:
            self.failed.add(notebook)

    def too_fast(self, notebook: str) -> str | None:
        """Why this notebook fails the floor, or None."""
        total = self.seconds.get(notebook, 0.0)
        if notebook in self.failed or notebook in self.partial or total >= self.floor_s:
            return None
        return (
            f"{notebook}: its cells ran {total:.2f} s in all, under the {self.floor_s:g} s floor: a course "
            "notebook starts Ray, so it ran nothing (every cell skipped? an empty notebook?)"
        )


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_notebook_item(item):
            item.config.stash[_CLOCK].partial.add(_notebook(item.nodeid))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if _is_notebook_item(item):
        item.config.stash[_CLOCK].record(_notebook(item.nodeid), report.when, report.duration, report.failed)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    result = yield  # nbval's collector teardown (kernel shutdown) runs inside this when the notebook ends
    if not _is_notebook_item(item) or (nextitem is not None and nextitem.parent is item.parent):
        return result
    names = reap_leftovers(grace_s=10)
    remove_stale()  # nbval SIGKILLs the kernel: its /tmp session folder and registry file are ours to remove
    if names:
        item.add_report_section("teardown", "leftover processes", "\n".join(names))
        raise pytest.fail.Exception(
            f"{item.fspath.basename} left {len(names)} process(es) running after its kernel stopped "
            f"(stopped them by PID): {', '.join(names)}",
            pytrace=False,
        )
    too_fast = item.config.stash[_CLOCK].too_fast(_notebook(item.nodeid))
    if too_fast:
        raise pytest.fail.Exception(too_fast, pytrace=False)
    return result


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    seconds = config.stash[_CLOCK].seconds
    if seconds:
        terminalreporter.write_sep("=", "seconds per notebook (its cells' run time)")
        for notebook, total in sorted(seconds.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{total:8.1f}  {notebook}")
