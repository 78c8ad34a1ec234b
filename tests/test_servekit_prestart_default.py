"""start_ray() keeps Ray's idle task workers off unless asked (issue 12: <= 1.5 GiB per notebook)."""

import pytest

from servekit import cluster


def test_start_ray_prestarts_no_idle_workers_by_default(monkeypatch, tmp_path):
    import ray

    seen = {}

    def fake_init(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop before a cluster starts")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(cluster, "SCRATCH", tmp_path)
    with pytest.raises(RuntimeError, match="stop before"):
        cluster.start_ray()
    config = seen["_system_config"]
    assert config["enable_worker_prestart"] is False
    assert config["prestart_worker_first_driver"] is False
    assert config["enable_output_error_log_if_still_retry"] is False, "the quiet setting stays"
