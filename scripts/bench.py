"""Course measurements (not tests: timings on a shared 2-core machine vary, so nothing here fails a build).

For each solution notebook: wall time under the same strict nbval run as `make test`, and the
peak memory (PSS, so shared pages are not counted twice) of its kernel plus every Ray process
the kernel started. Then the time from a cold start (no model built yet) to the first live
response in lesson 01, and two measurements in Serve's default and throughput-optimized
modes (servekit.modes: a fresh process and cluster per mode), from each lesson's own cells
(tagged app-code, measure-code):
- lesson 05, dynamic batching: its app and its measure_cpu(), against the offline limit that its
  offline_limit() measures in the same fresh process just before that process starts its cluster;
- lesson 06, what Serve costs per request: its bench app and its measure_overhead().
Each also records how many cores the machine's other processes kept busy meanwhile (on a
shared machine, the first suspect when two runs disagree). Results print as tables and go to
scratch/bench/results.json.

Usage:  python scripts/bench.py [solutions/NN_name.ipynb ...]      (or: make bench)
        python scripts/bench.py --modes-only --rounds 3            (only the two mode comparisons)
        python scripts/bench.py --nbval-only solutions/06_fastapi_ingress.ipynb   (time and memory)
"""

from __future__ import annotations

import argparse
import functools
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


def others_meanwhile(measure):
    """``measure``, plus how many cores the machine's other processes kept busy while it ran."""
    from servekit.cpu import cpu_by_role

    async def measured(handle, url: str) -> dict:
        with cpu_by_role() as cpu:
            runs = await measure(handle, url)
        return {"runs": runs, "others_cores": round(cpu.others_s / cpu.wall_s, 2)}

    return measured


def batching_modes(notebook: Path, requests: tuple[int, int] | None = None) -> dict:
    """Lesson 05's app and measure_cpu() in each Serve mode, each against the offline limit that the
    lesson's offline_limit() measures in the same fresh process right before its cluster starts.
    ``requests``: (unbatched, batched) requests per timed run instead of the lesson's."""
    from servekit import resolve_model
    from servekit.modes import compare_modes
    from servekit.notebook_cells import load_cells

    cells = vars(load_cells(notebook, ("measure-code", "app-code")))
    app = cells["SentimentAnalyzer"].bind(resolve_model("sentiment").location)
    modes = compare_modes(
        app,
        others_meanwhile(
            functools.partial(cells["measure_cpu"], **({"requests": requests} if requests else {}))
        ),
        name="batching",
        route_prefix="/batching",
        baseline=cells["offline_limit"],
    )
    summary = {}
    for mode, out in modes.items():
        speed = out["baseline"]["speed"]
        limit = max(speed.values())
        summary[mode] = {
            "offline_sentences_per_s": {str(k): round(v, 1) for k, v in speed.items()},
            "others_cores": out["measured"]["others_cores"],
        }
        for name, run in out["measured"]["runs"].items():
            batches = run["batches"]
            cpu_ms = run["watched"].ms_per_request(run["requests"])
            summary[mode][name] = {
                "throughput_rps": run["throughput_rps"],
                "p95_ms": run["p95_ms"],
                "errors": run["errors"],
                "of_offline_limit": round(run["throughput_rps"] / limit, 3),
                "of_offline_batch_32": round(run["throughput_rps"] / speed[32], 3),
                "mean_batch": round(sum(batches) / len(batches), 1) if batches else 1,
                "cpu_ms_per_request": {role: round(ms, 2) for role, ms in cpu_ms.items()},
            }
    return summary


def overhead_modes(notebook: Path) -> dict:
    """Lesson 06's bench app (a no-op and a model route) and measure_overhead() in each Serve mode."""
    from servekit.modes import compare_modes
    from servekit.notebook_cells import load_cells

    cells = vars(load_cells(notebook, ("app-code", "measure-code")))
    modes = compare_modes(
        cells["BenchOnServe"].bind(),
        others_meanwhile(cells["measure_overhead"]),
        name="bench",
        route_prefix="/bench",
        health_path="/docs",
    )
    summary = {}
    for mode, out in modes.items():
        summary[mode] = {"others_cores": out["others_cores"]}
        for route, run in out["runs"].items():
            summary[mode][route] = {
                "throughput_rps": run["throughput_rps"],
                "p50_ms": run["p50_ms"],
                "p95_ms": run["p95_ms"],
                "errors": run["errors"],
                "cpu_ms_per_request": {role: round(ms, 2) for role, ms in run["cpu_ms"].items()},
            }
    return summary


def print_modes(title: str, modes: dict) -> None:
    print(f"\n{title}; CPU ms per request by role:")
    for mode in ("default", "throughput"):
        row = modes[mode]
        offline = row.get("offline_sentences_per_s")
        extra = f", offline sentences/s by batch size {offline}" if offline else ""
        print(f"  {mode} mode (other processes kept {row['others_cores']} cores busy{extra})")
        for name, run in row.items():
            if not isinstance(run, dict) or "throughput_rps" not in run:
                continue
            cpu = "  ".join(f"{role} {ms}" for role, ms in run["cpu_ms_per_request"].items())
            share = f" {run['of_offline_limit']:>4.0%} of offline" if "of_offline_limit" in run else ""
            batch = f"  batch {run['mean_batch']:>4}" if "mean_batch" in run else ""
            print(
                f"    {name:<17}{run['throughput_rps']:>8} req/s{share}{batch}  p95 {run['p95_ms']:>6} ms"
                f"  errors {run['errors']}  {cpu}"
            )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="solution notebooks (default: all)")
    parser.add_argument("--modes-only", action="store_true", help="only the mode comparisons of 05 and 06")
    parser.add_argument("--nbval-only", action="store_true", help="only nbval time and peak PSS")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each mode comparison")
    parser.add_argument(
        "--long-runs", action="store_true", help="lesson 05: 320 unbatched / 1280 batched requests per run"
    )
    args = parser.parse_args(argv)
    become_subreaper()
    chosen = [Path(a).resolve() for a in args.notebooks]
    paths = chosen or sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    rows = []
    for p in [] if args.modes_only else paths:
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
    if args.nbval_only:
        paths = []
    if lesson01 in paths and not args.modes_only:
        print("cold start to first response in lesson 01 ...", flush=True)
        results["first_response_cold_s"] = first_response_s(lesson01)
        reap_leftovers()
    comparisons = {
        "batching": ("05_batching.ipynb", batching_modes),
        "overhead": ("06_fastapi_ingress.ipynb", overhead_modes),
    }
    for key, (name, compare) in comparisons.items():
        if ROOT / "solutions" / name not in paths:
            continue
        results[key] = []
        for round_ in range(1, args.rounds + 1):
            print(f"{name} in the default and the throughput-optimized mode, round {round_} ...", flush=True)
            extra = {"requests": (320, 1280)} if key == "batching" and args.long_runs else {}
            results[key].append(compare(ROOT / "solutions" / name, **extra))
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
    titles = {
        "batching": "lesson 05, dynamic batching (same model, same 2 cores)",
        "overhead": "lesson 06, what Serve costs per request (the bench app, HTTP to port 8000)",
    }
    for key, title in titles.items():
        for round_, modes in enumerate(results.get(key, []), 1):
            print_modes(f"{title}, round {round_}", modes)
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
