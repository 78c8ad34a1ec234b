"""Lesson 04 teaches how the pinned Ray behaves with resources, threads and stuck replicas.

These tests pin those facts to the installed Ray, without starting a cluster: if an upgrade
changes one of them, this file fails and points at the paragraph of
solutions/04_resources_gpus.ipynb to rewrite.
"""

import inspect
import os
from types import SimpleNamespace

import pytest
import ray
import ray._private.utils as ray_utils
from ray import serve
from ray.serve._private import constants
from ray.serve._private.client import ServeControllerClient
from ray.serve._private.replica import UserCallableWrapper


@pytest.fixture
def env_var():
    """Run a test with os.environ[name] unset, and put back what was there afterwards."""
    saved = {}

    def clear(name):
        saved.setdefault(name, os.environ.pop(name, None))

    yield clear
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


def fake_worker_context(monkeypatch, assigned=None, accelerators=None):
    """What ray.get_runtime_context() returns inside a worker that was given `assigned` resources."""
    ctx = SimpleNamespace(
        worker=SimpleNamespace(mode=ray._private.worker.WORKER_MODE),
        get_assigned_resources=lambda: dict(assigned or {}),
        get_accelerator_ids=lambda: dict(accelerators or {}),
    )
    monkeypatch.setattr(ray, "get_runtime_context", lambda: ctx)


@pytest.mark.parametrize("num_cpus, expected", [(0.5, "1"), (1, "1"), (1.5, "1"), (2, "2"), (None, "1")])
def test_ray_sets_omp_num_threads_from_num_cpus(monkeypatch, env_var, num_cpus, expected):
    """Section 5: OMP_NUM_THREADS = max(floor(num_cpus), 1) in a worker (1 when no CPU was reserved)."""
    env_var("OMP_NUM_THREADS")
    fake_worker_context(monkeypatch, assigned={} if num_cpus is None else {"CPU": num_cpus})
    assert ray_utils.set_omp_num_threads_if_unset() is True
    assert os.environ["OMP_NUM_THREADS"] == expected


def test_ray_leaves_an_exported_omp_num_threads_alone(monkeypatch, env_var):
    """Section 5: a machine-wide OMP_NUM_THREADS switches Ray's protection off."""
    env_var("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "16"
    fake_worker_context(monkeypatch, assigned={"CPU": 0.5})
    assert ray_utils.set_omp_num_threads_if_unset() is False
    assert os.environ["OMP_NUM_THREADS"] == "16"


def test_cuda_visible_devices_only_set_for_replicas_with_a_gpu(monkeypatch, env_var):
    """Section 2 (ray-project/ray#54868): no GPU reserved -> CUDA_VISIBLE_DEVICES untouched."""
    env_var("CUDA_VISIBLE_DEVICES")
    env_var("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO")
    fake_worker_context(monkeypatch, accelerators={"GPU": []})
    ray_utils.set_visible_accelerator_ids()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    fake_worker_context(monkeypatch, accelerators={"GPU": ["0"]})
    ray_utils.set_visible_accelerator_ids()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"


def test_serve_defaults_the_lesson_quotes():
    @serve.deployment
    class Plain:
        pass

    assert Plain.ray_actor_options == {"num_cpus": 1}, "Serve's default CPU reservation"
    assert constants.DEFAULT_MAX_ONGOING_REQUESTS == 5
    assert constants.RAY_SERVE_RUN_SYNC_IN_THREADPOOL, "sync methods run in a thread pool"
    assert constants.DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S == 20
    pool_size = UserCallableWrapper._get_user_code_threadpool_max_workers
    assert [pool_size(SimpleNamespace(_ray_actor_options={"num_cpus": c})) for c in (0.5, 1, 2)] == [5, 5, 6]


def test_slow_startup_warning_knobs(monkeypatch):
    """Section 4: the env vars the notebook sets exist, and default to 30 s."""
    from ray.serve._private import deployment_state

    assert deployment_state.SLOW_STARTUP_WARNING_S == int(
        os.environ.get("RAY_SERVE_SLOW_STARTUP_WARNING_S", 30)
    )
    source = inspect.getsource(deployment_state)
    for name in (
        "RAY_SERVE_SLOW_STARTUP_WARNING_S",
        "RAY_SERVE_SLOW_STARTUP_WARNING_PERIOD_S",
        "to be scheduled",
    ):
        assert name in source


def test_serve_run_waits_without_timeout_and_run_many_can_skip_it():
    """Section 4: serve.run blocks until RUNNING with no deadline; run_many can return at once."""
    wait = inspect.signature(ServeControllerClient._wait_for_application_running)
    assert wait.parameters["timeout_s"].default == -1
    assert "wait_for_applications_running" in inspect.signature(serve.run_many).parameters
    assert hasattr(serve, "RunTarget")


def test_old_option_is_gone():
    with pytest.raises(TypeError, match="max_concurrent_queries"):
        serve.deployment(max_concurrent_queries=5)
