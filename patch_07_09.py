"""One-off: apply the issue-27 prose fixes to lessons 07 and 09 (markdown cells only).

Lessons 07 and 09 were being re-executed while the other lessons' prose was fixed, so their
markdown changes come as this script: run it on the re-executed notebooks, then regenerate the
learner copies, and delete this file.

    python patch_07_09.py && python scripts/make_notebooks.py

Each replacement is an exact substring of one markdown cell; the script fails, and writes
nothing for that notebook, unless every old text occurs exactly once among its markdown cells.
Code cells and outputs are not touched.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent

L07 = [
    # T5: an input example makes log_model load the model and predict, in this process
    # (mlflow/models/model.py:1249-1258 -> mlflow/models/utils.py:_validate_serving_input, 2021-2026).
    (
        "and an **input example**, which MLflow checks against the signature while logging;",
        "and an **input example**: to check that the example can be served, `log_model` loads the model it "
        "has just saved and runs `predict` on the example, in the calling process (encoder included), so "
        "logging a version here costs the memory of loading it;",
    ),
    # N8: 127.0.0.1:5000 is not reachable from a hosted notebook's browser, and the next cell stops
    # the server.
    (
        "Open the address above in a browser while the server runs to see the runs,",
        "On your own machine, open the address above in a browser before you run the next cell (it stops "
        "the server) to see the runs,",
    ),
    (
        "(On your own machine, leave it running; the rest of the lesson works the same against it.)",
        "(On your own machine, leave it running; the rest of the lesson works the same against it. On "
        "Binder or another hosted notebook, 127.0.0.1 is the notebook server's machine, not yours, and the "
        "course installs no proxy to it, so skip the UI there.)",
    ),
    (
        "The models this process loaded go too, each holding an encoder,",
        "The models this process loaded go too (the ones you loaded, and the ones `log_model` loaded to "
        "check its input example), each holding an encoder,",
    ),
    # T6: the alias is resolved when a replica starts, too (course_apps/sentiment_registry.py:33-63).
    (
        "That is also why `user_config` carries a `rollout` counter: a replica re-reads the alias only when "
        "`user_config` changes, and moving an alias does not change the config.",
        "That is also why `user_config` carries a `rollout` counter: a running replica re-reads the alias "
        "only when `user_config` changes, and moving an alias does not change the config. A replica that "
        "*starts* reads it too: after someone moves `@champion`, a replica that restarts (a crash, a failed "
        "health check) or that autoscaling adds loads the new champion without any deploy, while its "
        "siblings keep the old one. Every answer says which version it came from, so you can see it "
        "happen; to rule it out, a deploy resolves the alias itself and puts the version number in "
        "`user_config` (this lesson's module accepts only an alias).",
    ),
]

L09 = [
    # N7: README's course map says ~2.5 min for this notebook.
    (
        "the notebook runs in about two minutes on a 2-core laptop",
        "the notebook runs in about two and a half minutes on a 2-core laptop",
    ),
    # T10: serve build writes only the options the code set (ray/serve/scripts.py:902-911,
    # ray/serve/deployment.py:583-591) and fixed cluster-wide defaults (scripts.py:922-934).
    (
        "writes a **config file** with every option at its default: that file,",
        "writes a **config file**: fixed defaults for the cluster-wide options (proxy location, HTTP, gRPC, "
        "logging), and for each application its import path and, per deployment, only the options your "
        "code set in `@serve.deployment` (the `max_ongoing_requests: 8` and health-check settings printed "
        "below come from `sentiment_service.py`; an option you did not set is left out and keeps Serve's "
        "default). That file,",
    ),
    # T1: course_apps is importable everywhere on this venv: the kit is installed editable
    # (scripts/post_install.sh `pip install --no-deps -e .`; the editable finder's MAPPING).
    (
        "* `runtime_env: {}`: the nodes' workers start in Ray's own folders and cannot import `course_apps` "
        "(ModuleNotFoundError). `working_dir: local://<repo>` says",
        "* `runtime_env: {}`: on this machine that would still work, because `make setup` installed the "
        "course's packages in editable mode (`pip install -e .`), so every process of this environment's "
        "Python, Ray's workers included, can import `course_apps` (lessons 07 and 08 deploy configs "
        "without a `working_dir`). On a real cluster the other machines have neither the checkout nor that "
        "install, and their workers fail with `ModuleNotFoundError`: the code must come with the config "
        "(`working_dir`) or be installed in the nodes' image. `working_dir: local://<repo>` says",
    ),
    # N1: which drill is slowest depends on the waits before the replacement can start
    # (graceful stop of an unhealthy replica: deployment_state.py _stop_unhealthy_replica,
    # RAY_SERVE_FORCE_STOP_UNHEALTHY_REPLICAS in constants.py:529; graceful_shutdown_timeout_s 20 s,
    # constants.py:270).
    (
        "Recovery takes a health-check period or two plus the new replica's start (on 2 busy cores, loading "
        "the model takes seconds), longer for a node, which must first be declared dead.",
        "Recovery takes a health-check period or two plus the new replica's start (on 2 busy cores, loading "
        "the model takes seconds), and two drills wait before that start: a dead node must first be declared "
        "dead, and a replica that failed its health check keeps its CPU while it is stopped gracefully "
        "(up to `graceful_shutdown_timeout_s`, 20 s by default; `RAY_SERVE_FORCE_STOP_UNHEALTHY_REPLICAS=1` "
        "kills it instead). After drill 2 the three replicas fill the "
        "head's 3 CPUs, so the replacement can only start once the unhealthy replica is gone: compare the "
        "`recovered in` times, and do not expect the node drill to be the slowest.",
    ),
    # N4: the router counts a request as queued until a replica takes it, and says it may reject more
    # than strictly necessary under a burst (ray/serve/_private/router.py:235-250).
    (
        "A 503 does not say *when* to come back.",
        "Count the 200s: often fewer than `max_ongoing_requests` + `max_queued_requests` = 6. The proxy "
        "counts a request as queued until a replica has taken it, so when 20 arrive at once it refuses some "
        "that would have found room a moment later (Ray's router says so in a comment, in "
        "`ray/serve/_private/router.py`); the check asserts lower bounds only.\n\n"
        "A 503 does not say *when* to come back.",
    ),
    # T11: for `serve deploy` the warning comes from the dashboard's Serve module
    # (ray/dashboard/modules/serve/serve_head.py:286-300); a driver logs it itself
    # (ray/serve/_private/api.py:56-77).
    (
        "changing them in a config that is already running is ignored, with a warning in the controller's "
        "log.",
        "changing them in a config that is already running is ignored, with a warning: for `serve deploy` "
        "in the dashboard's log (the dashboard's Serve module handles that REST call), for `serve run` or a "
        "Python driver in the driver's own output.",
    ),
    (
        "Set them before the first deploy, or `serve shutdown` and deploy again.)",
        "Set them before the first deploy, or `serve shutdown` and deploy again.) The timeout counts the "
        "time a request waits in the queue too, which is why a burst like the one above can also come back "
        "with a 408 or two: requests that waited behind the others.",
    ),
    # T12: the Prometheus endpoint binds to all interfaces unless the node's IP is loopback
    # (ray/dashboard/modules/reporter/reporter_agent.py:530-534).
    (
        "It does not guard Serve's HTTP port (your API key does) or the Prometheus endpoint (part 7 read it "
        "without the token),",
        "It does not guard Serve's HTTP port (your API key does) or the Prometheus endpoint (part 7 read it "
        "without the token), and on a cluster of several nodes that endpoint listens on all interfaces "
        "(it stays on 127.0.0.1 only when the node's address is loopback): anyone who can reach the machine "
        "can read your metrics,",
    ),
    (
        "* on **Binder** or any hosted notebook: the notebook server's own proxy is the only way in; never "
        "start anything on 0.0.0.0,",
        "* on **Binder** or any hosted notebook: the notebook server's own proxy is the only way in; never "
        "start anything on 0.0.0.0 yourself (this lesson's two-node cluster does, as the list above shows: "
        "run it only where the machine's ports are not reachable from outside),",
    ),
]


def patch(name: str, replacements: list[tuple[str, str]]) -> None:
    path = ROOT / "solutions" / name
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "markdown"]
    for old, new in replacements:
        hits = [c for c in cells if old in c.source]
        found = sum(c.source.count(old) for c in hits)
        assert found == 1, f"{name}: expected one markdown occurrence, found {found}: {old[:70]!r}"
        hits[0].source = hits[0].source.replace(old, new)
    nbformat.write(nb, path)
    print(f"{name}: {len(replacements)} replacements")


if __name__ == "__main__":
    patch("07_mlflow_registry.ipynb", L07)
    patch("09_production.ipynb", L09)
