"""Course measurements (not tests: timings on a shared 2-core machine vary, so nothing here fails a build).

For each solution notebook: wall time under the same strict nbval run as `make test`, and the
peak memory (PSS, so shared pages are not counted twice) of its kernel plus every Ray process
the kernel started. Then the time from a cold start (no model built yet) to the first live
response in lesson 01, and lesson 05's batching measurement in Serve's default and
throughput-optimized modes: lesson 05's own cells (tagged app-code, measure-code) run
here, then its app and its measure() run in a fresh cluster per mode (servekit.modes). Results
print as a table and go to scratch/bench/results.json.

Usage:  python scripts/bench.py [solutions/NN_name.ipynb ...]      (or: make bench)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from servekit.cleanup import become_subreaper, reap_leftovers  # noqa: E402

NBVAL = ["-q"]  # the nbval flags themselves come from pyproject.toml (addopts), as in make test


class PeakPss(threading.Thread):
    """Samples the summed PSS of ``root``'s descendants (not ``root`` itself) until stopped."""

    def __init__(self, root: int, every_s: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.every_s, self.peak, self._done = root, every_s, 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            total = 0
            try:
                procs = psutil.Process(self.root).children(recursive=True)
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    total += p.memory_full_info().pss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._done.wait(self.every_s)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def nbval_run(path: Path) -> dict:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *NBVAL, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sampler = PeakPss(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    peak = sampler.stop()
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    return {
        "notebook": path.name,
        "nbval_wall_s": round(time.monotonic() - t0, 1),
        "peak_pss_gib": round(peak / 2**30, 2),
        "result": summary,
    }


def first_response_s(path: Path) -> float:
    """Cold start: delete the built model, start a kernel, run cells until the one tagged first-response."""
    import nbformat
    from nbclient import NotebookClient

    shutil.rmtree(ROOT / "scratch" / "models", ignore_errors=True)
    nb = nbformat.read(path, as_version=4)
    stop = next(i for i, c in enumerate(nb.cells) if "first-response" in c.metadata.get("tags", []))
    last = next(i for i in range(len(nb.cells) - 1, -1, -1) if nb.cells[i].cell_type == "code")
    nb.cells = nb.cells[: stop + 1] + [nb.cells[last]]  # ... then the cleanup cell
    t0 = time.monotonic()
    marks = {}
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_executed=lambda cell, cell_index, execute_reply: marks.setdefault(
            cell_index, time.monotonic()
        ),
    )
    client.execute()
    return round(marks[stop] - t0, 1)


def batching_modes(notebook: Path) -> dict:
    """Lesson 05's offline limit, then its app and measure() in each Serve mode (one run)."""
    from servekit import resolve_model
    from servekit.modes import compare_modes, load_cells

    cells = load_cells(notebook, ("measure-code", "app-code"))
    model_dir = resolve_model("sentiment").location
    offline = cells["offline_speed"](model_dir, cells["texts"])["speed"]  # here, before any cluster
    limit = max(offline.values())
    app = cells["SentimentAnalyzer"].bind(model_dir)
    modes = compare_modes(app, cells["measure"], name="batching", route_prefix="/batching")
    summary = {"offline_sentences_per_s": {str(k): round(v, 1) for k, v in offline.items()}}
    for mode, runs in modes.items():
        summary[mode] = {
            name: {
                "throughput_rps": run["throughput_rps"],
                "p95_ms": run["p95_ms"],
                "errors": run["errors"],
                "of_offline_limit": round(run["throughput_rps"] / limit, 3),
                "mean_batch": round(sum(run["batches"]) / len(run["batches"]), 1) if run["batches"] else 1,
                "cpu_ms_per_request": {role: round(ms, 2) for role, ms in run["cpu_ms"].items()},
            }
            for name, run in runs.items()
        }
    return summary


def print_batching(batching: dict) -> None:
    print("\nlesson 05, dynamic batching (same model, same 2 cores, one run); CPU ms per request by role:")
    for mode in ("default", "throughput"):
        print(f"  {mode} mode")
        for name, row in batching[mode].items():
            cpu = "  ".join(f"{role} {ms}" for role, ms in row["cpu_ms_per_request"].items())
            print(
                f"    {name:<17}{row['throughput_rps']:>7} req/s {row['of_offline_limit']:>6.0%} of offline"
                f"  batch {row['mean_batch']:>4}  p95 {row['p95_ms']:>6} ms  {cpu}"
            )


def main(argv: list[str]) -> int:
    become_subreaper()
    paths = [Path(a).resolve() for a in argv] or sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    rows = []
    for p in paths:
        print(f"nbval {p.name} ...", flush=True)
        rows.append(nbval_run(p))
        print("   ", rows[-1], flush=True)
        reap_leftovers()
    results = {
        "notebooks": rows,
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        },
    }
    lesson01 = ROOT / "solutions" / "01_first_deployment.ipynb"
    if lesson01 in paths or not argv:
        print("cold start to first response in lesson 01 ...", flush=True)
        results["first_response_cold_s"] = first_response_s(lesson01)
        reap_leftovers()
    lesson05 = ROOT / "solutions" / "05_batching.ipynb"
    if lesson05 in paths or not argv:
        print("lesson 05 in the default and the throughput-optimized mode ...", flush=True)
        results["batching"] = batching_modes(lesson05)
        reap_leftovers()
    out = ROOT / "scratch" / "bench" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'notebook':<34}{'nbval wall (s)':>16}{'peak PSS (GiB)':>16}  result")
    for r in rows:
        print(f"{r['notebook']:<34}{r['nbval_wall_s']:>16}{r['peak_pss_gib']:>16}  {r['result']}")
    if "first_response_cold_s" in results:
        print(
            "lesson 01, kernel start -> first HTTP response (cold, model built from the wheel): "
            f"{results['first_response_cold_s']} s"
        )
    if "batching" in results:
        print_batching(results["batching"])
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
