"""Facts about the pinned Ray that lessons 03-05 teach, checked without starting a cluster.

If a Ray upgrade changes one of them, this file fails and names the lesson paragraph to rewrite.
"""

import inspect
import warnings

import pytest
from ray import serve
from ray.serve import batching
from ray.serve._private import constants
from ray.serve._private.config import DeploymentConfig
from ray.serve.config import AutoscalingConfig


def test_rolling_updates_are_stop_first_20_percent_at_a_time():
    """03 section 3, 04 section 5 and its exercise: rolling_update_percentage 0.2, max_surge_percent 0."""
    config = DeploymentConfig()
    assert config.rolling_update_percentage == 0.2
    assert config.max_surge_percent == 0
    assert {"max_surge_percent", "rolling_update_percentage"} <= set(
        inspect.signature(serve.deployment).parameters
    )


def test_metrics_interval_s_is_deprecated_and_its_replacements_are_not_read_yet():
    """03 section 5: the field warns; the two environment variables exist but nothing reads them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        AutoscalingConfig(metrics_interval_s=0.5, look_back_period_s=2)
    assert any("RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S" in str(w.message) for w in caught)
    names = (
        "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S",
        "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S",
    )
    for name in names:
        assert hasattr(constants, name)
    from ray.serve._private import replica, router

    for module in (replica, router):
        source = inspect.getsource(module)
        assert "metrics_interval_s" in source, "pushes still follow the deprecated field"
        assert not any(name in source for name in names), f"{module.__name__} now reads the variables"


def test_autoscaling_defaults_taught_in_lesson03():
    config = AutoscalingConfig()
    assert (config.upscale_delay_s, config.downscale_delay_s, config.look_back_period_s) == (30, 600, 30)
    assert config.target_ongoing_requests == 2
    auto = AutoscalingConfig.default()
    assert (auto.min_replicas, auto.max_replicas) == (1, 100)


def test_serve_batch_rules_taught_in_lesson05():
    """05 section 2: a plain def fails at once under a bare @serve.batch; the knobs and setters exist."""
    with pytest.raises(TypeError, match="must be 'async def'"):

        @serve.batch
        def plain(items):
            return items

    params = inspect.signature(serve.batch).parameters
    assert {"max_concurrent_batches", "batch_size_fn"} <= set(params)
    assert params["max_concurrent_batches"].default == 1

    class Holder:
        @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
        async def method(self, items):
            return items

    assert callable(Holder().method.set_max_batch_size) and callable(Holder().method.set_batch_wait_timeout_s)
    source = inspect.getsource(batching)
    for metric in ("serve_actual_batch_size", "serve_batch_wait_time_ms", "serve_batch_utilization_percent"):
        assert f'"{metric}"' in source
    assert "max_batch_size * self.max_concurrent_batches" in source, "the warning counts both knobs"
