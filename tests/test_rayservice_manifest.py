"""deploy/rayservice.yaml, checked without Kubernetes.

Two validators, as the lesson explains: Ray's own ``ServeDeploySchema`` for the Serve config inside
``serveConfigV2`` (what ``serve deploy`` and KubeRay's call to the dashboard run it through), and a
JSON schema written from KubeRay's v1 API reference (deploy/rayservice.schema.json, sources in its
``$comment``) for the rest. ServeDeploySchema ignores keys it does not know (a typo such as
``max_ongoing_request`` is dropped silently), so ``unknown_serve_keys`` also checks every key
against the fields of Ray's config models. Broken copies of the manifest must fail.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from pydantic import BaseModel
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import DeploymentSchema, HTTPOptionsSchema, ServeApplicationSchema, ServeDeploySchema

from servekit.paths import REPO_ROOT

MANIFEST = REPO_ROOT / "deploy" / "rayservice.yaml"
SCHEMA = json.loads((REPO_ROOT / "deploy" / "rayservice.schema.json").read_text())


def unknown_serve_keys(config: dict) -> list[str]:
    """Keys of a Serve config that Ray's models do not define (Ray would ignore them)."""

    def extra(where: str, data: dict, model: type[BaseModel]) -> list[str]:
        return [f"{where}.{key}" for key in data if key not in model.model_fields]

    found = extra("<top>", config, ServeDeploySchema)
    found += extra("http_options", config.get("http_options") or {}, HTTPOptionsSchema)
    for app in config.get("applications") or []:
        found += extra(f"applications[{app.get('name')}]", app, ServeApplicationSchema)
        for dep in app.get("deployments") or []:
            where = f"applications[{app.get('name')}].deployments[{dep.get('name')}]"
            found += extra(where, dep, DeploymentSchema)
            found += extra(
                f"{where}.autoscaling_config", dep.get("autoscaling_config") or {}, AutoscalingConfig
            )
    return found


def problems(manifest: dict) -> list[str]:
    """Every problem both validators find in a RayService manifest ([] when it is valid)."""
    found = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(manifest)
    ]
    serve_config = (manifest.get("spec") or {}).get("serveConfigV2")
    if isinstance(serve_config, str):
        try:
            parsed = yaml.safe_load(serve_config)
            ServeDeploySchema.model_validate(parsed)
            found += [f"serveConfigV2: unknown key {key}" for key in unknown_serve_keys(parsed)]
        except (yaml.YAMLError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            found.append(f"serveConfigV2: {exc}")
    return found


def load() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def serve_config(manifest: dict) -> dict:
    return yaml.safe_load(manifest["spec"]["serveConfigV2"])


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_manifest_is_valid():
    assert problems(load()) == []


def test_ray_version_and_images_match_the_pinned_ray():
    cluster = load()["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    images = {c["image"] for g in groups for c in g["template"]["spec"]["containers"]}
    assert images == {f"rayproject/ray:{ray.__version__}-py311-cpu"}


def test_head_dashboard_host_is_explicit():
    """The pod's dashboard is not on loopback (the operator must reach it); the file says so."""
    head = load()["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert head["serviceType"] == "ClusterIP"  # never exposed outside the Kubernetes cluster


def test_application_module_is_in_course_apps():
    for app in serve_config(load())["applications"]:
        module, _, attr = app["import_path"].partition(":")
        path = REPO_ROOT / Path(*module.split(".")).with_suffix(".py")
        if not path.exists():
            pytest.skip(f"{path.relative_to(REPO_ROOT)} is not in this checkout (lesson 09's branch adds it)")
        assert f"\n{attr} = " in path.read_text(), f"{module} defines no top-level {attr!r}"


def broken(change) -> dict:
    manifest = copy.deepcopy(load())
    change(manifest)
    return manifest


def set_serve(change):
    def apply(manifest: dict) -> None:
        config = serve_config(manifest)
        change(config)
        manifest["spec"]["serveConfigV2"] = yaml.safe_dump(config)

    return apply


def cluster(manifest: dict) -> dict:
    return manifest["spec"]["rayClusterConfig"]


def first_deployment(config: dict) -> dict:
    return config["applications"][0]["deployments"][0]


BROKEN = {
    "wrong apiVersion": (lambda m: m.update(apiVersion="ray.io/v1alpha1"), "'ray.io/v1' was expected"),
    "wrong kind": (lambda m: m.update(kind="RayCluster"), "'RayService' was expected"),
    "missing headGroupSpec": (
        lambda m: cluster(m).pop("headGroupSpec"),
        "'headGroupSpec' is a required property",
    ),
    "missing rayClusterConfig": (
        lambda m: m["spec"].pop("rayClusterConfig"),
        "'rayClusterConfig' is a required",
    ),
    "serveConfigV2 as a mapping": (
        lambda m: m["spec"].update(serveConfigV2=serve_config(m)),
        "is not of type 'string'",
    ),
    "typo in a spec key": (
        lambda m: m["spec"].update(serveConfigv2=m["spec"].pop("serveConfigV2")),
        "Additional properties are not allowed ('serveConfigv2'",
    ),
    "rayStartParams value not a string": (
        lambda m: cluster(m)["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
        "0 is not of type 'string'",
    ),
    "worker group without a name": (
        lambda m: cluster(m)["workerGroupSpecs"][0].pop("groupName"),
        "'groupName' is a required property",
    ),
    "container without an image": (
        lambda m: cluster(m)["headGroupSpec"]["template"]["spec"]["containers"][0].pop("image"),
        "'image' is a required property",
    ),
    "bad serveConfigV2 field value": (
        set_serve(lambda c: c.update(proxy_location="Everywhere")),
        "serveConfigV2: 1 validation error",
    ),
    "num_replicas beside autoscaling_config": (
        set_serve(lambda c: first_deployment(c).update(num_replicas=2)),
        "Manually setting num_replicas is not allowed",
    ),
    "typo in a deployment key": (
        set_serve(lambda c: first_deployment(c).update(max_ongoing_request=8)),
        "unknown key applications[sentiment].deployments[SentimentAnalyzer].max_ongoing_request",
    ),
    "typo in an autoscaling key": (
        set_serve(lambda c: first_deployment(c)["autoscaling_config"].update(max_replica=4)),
        "autoscaling_config.max_replica",
    ),
    "serveConfigV2 not YAML": (
        lambda m: m["spec"].update(serveConfigV2="applications: [\n"),
        "serveConfigV2:",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_manifest_fails(case):
    change, expected = BROKEN[case]
    found = problems(broken(change))
    assert any(expected in p for p in found), found
