"""The nbval sanitizer, run on output captured from the course's real notebook runs."""

import re
from pathlib import Path

from nbval.plugin import get_sanitize_patterns

CFG = Path(__file__).with_name("nbval_sanitize.cfg")
PATTERNS = get_sanitize_patterns(CFG.read_text())


def sanitize(text: str) -> str:
    for regex, replace in PATTERNS:
        text = re.sub(regex, replace, text)
    return text


def test_every_section_parses():
    # nbval silently skips a pair whose "replace:" lacks its space; count them all.
    sections = re.findall(r"^\[.+\]$", CFG.read_text(), re.M)
    assert len(PATTERNS) == len(sections) == 17


def test_serve_shutdown_noise_is_dropped_whether_or_not_it_arrives():
    with_noise = (
        "\x1b[33m(raylet)\x1b[0m Task ServeController.listen_for_change failed. There are infinite retries remaining, "
        "so the task will be retried. Error: The actor is dead because it was killed by `ray.kill`.\n"
        "\x1b[33m(raylet)\x1b[0m Task ServeController.graceful_shutdown failed. There are infinite retries remaining, "
        "so the task will be retried. Error: The actor is dead because it was killed by `ray.kill`.\n"
        "Serve and Ray are shut down: True\n"
    )
    assert (
        sanitize(with_noise)
        == sanitize("Serve and Ray are shut down: True\n")
        == "Serve and Ray are shut down: True\n"
    )


def test_serve_router_warnings_of_a_busy_machine_do_not_change_the_comparison():
    # Captured from a driver whose replicas answered Serve's queue-length probe late (CI, stop 34:
    # notebooks/01 cell 6 failed with "Unexpected output fields: {'stderr'}").
    busy = (
        "WARNING 2026-12-06 03:24:51,422 serve 8969 -- Failed to get queue length from Replica(id='2ovw2cuw', "
        "deployment='SentimentAnalyzer', app='sentiment') within 0.1s. If this happens repeatedly it's likely caused "
        "by high network latency in the cluster. You can configure the deadline using the "
        "`RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S` environment variable.\n"
        "WARNING 2026-12-06 03:24:53,001 serve 8969 -- Failed to route request after 5 attempts over 2.03s. Retrying."
        " Request ID: 1f0c4d7e-4c4e-4b7e-9d7e-1f0c4d7e4c4e.\n"
    )
    assert sanitize(busy) == ""
    # A Serve warning that is not about load stays, so a cell that starts warning still fails.
    other = "WARNING 2026-12-06 03:24:51,422 serve 8969 -- Deployment 'A' has 1 replica that has taken more than 30s to start.\n"
    assert "Deployment 'A'" in sanitize(other)


def test_a_busy_port_8000_does_not_change_the_comparison():
    busy = "Port 8000 is busy (another notebook's Ray cluster?); Serve listens on 41234 instead.\napp: RUNNING at http://127.0.0.1:41234/x\n"
    assert (
        sanitize(busy)
        == sanitize("app: RUNNING at http://127.0.0.1:8000/x\n")
        == "app: RUNNING at http://127.0.0.1:<PORT>/x\n"
    )


def test_a_node_started_again_on_a_busy_machine_does_not_change_the_comparison():
    retried = (
        "Node 'head' timed out during startup (a busy machine?); starting it again.\nhead: 1 node(s) alive\n"
    )
    assert sanitize(retried) == sanitize("head: 1 node(s) alive\n") == "head: 1 node(s) alive\n"


def test_ports_pids_ids_addresses_and_times_get_placeholders():
    line = (
        "[2026-11-25 13:49:26,558 E 9004 9004] ray::ServeReplica:sentiment:SentimentAnalyzer.handle_request() "
        "(pid=9281, ip=192.0.2.2, actor_id=f90796a43aaa57e56243115701000000, repr=<ServeReplica object at 0x7f57883d2790>) "
        'File "/tmp/ipykernel_8541/682129045.py", line 26 took 12.5 ms; dashboard http://127.0.0.1:8265'
    )
    out = sanitize(line)
    for placeholder in (
        "<TIMESTAMP>",
        "pid=<PID>",
        "ip=<IP>",
        "actor_id=<ID>",
        "<ADDR>",
        "<IPYKERNEL_FILE>",
        "<DURATION>",
        "127.0.0.1:<PORT>",
    ):
        assert placeholder in out, (placeholder, out)
    assert not re.search(r"9281|192\.0\.2\.2|f90796a4|8265|8541", out), out


def test_meaningful_output_is_left_alone():
    for text in (
        "200 {'label': 'positive', 'score': 0.811, 'scores': {'positive': 0.811, 'neutral': 0.181, 'negative': 0.008}}\n",
        "logical resources: {'CPU': 2.0}\n",
        "too long       413  'text' has 4000 characters; the limit is 2000\n",
        "ray           2.60.0      2.60.0\n",
    ):
        assert sanitize(text) == text


def test_the_ray_temp_dir_reads_the_same_at_a_short_and_a_long_checkout_path():
    # servekit.ray_temp_dir(): scratch/ray in the checkout, or its own /tmp folder where the checkout's
    # path is too long for Ray's Unix sockets; a stored output must not depend on which one a clone got.
    flags = "ray start --head --port=<PORT> --temp-dir={} --object-store-memory=104857600"
    short = flags.format("/work/main/scratch/ray")
    stored = flags.format("<repo>/scratch/ray")
    long = flags.format("/tmp/servekit-ray-1a2b3c4d-k2x_9qz")
    expected = flags.format("<RAY_TEMP_DIR>")
    assert sanitize(short) == sanitize(stored) == sanitize(long) == expected
    # the folder's own files keep their names, and other paths are left alone
    assert sanitize("/tmp/servekit-ray-1a2b3c4d-abc/session_latest") == "<RAY_TEMP_DIR>/session_latest"
    assert (
        sanitize("/work/main/scratch/raynbow.txt /tmp/other") == "/work/main/scratch/raynbow.txt /tmp/other"
    )


def test_a_node_port_taken_meanwhile_does_not_change_the_comparison():
    raced = (
        "Port(s) --dashboard-port=8265 taken by another process meanwhile; starting 'head' on others.\n"
        "head node up: True\n"
    )
    assert sanitize(raced) == sanitize("head node up: True\n") == "head node up: True\n"


def test_no_stored_output_holds_a_busy_port_note():
    # The sanitizer deletes the note's text, but nbval still expects the stream it came in: a notebook
    # executed while another cluster held port 8000 fails strict nbval on a quiet machine.
    import json

    root = CFG.parents[1]
    found = [
        str(p.relative_to(root))
        for p in sorted([*root.glob("solutions/**/*.ipynb"), *root.glob("notebooks/*.ipynb")])
        if "is busy (another notebook's Ray cluster?)" in json.dumps(json.loads(p.read_text()).get("cells"))
    ]
    assert not found, f"re-execute these on a machine with no other Ray cluster: {found}"
