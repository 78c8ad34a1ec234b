"""No request body gets a 5xx from the capstone's apps (the starter and the reference solutions).

Each app is built from its notebook's cells tagged ``app-code`` (tests/lesson_code.py), deployed on
one live Serve cluster with a model logged to a fresh MLflow registry in ``tmp_path``, and fuzzed
with hypothesis (tests/http_fuzz.py). Starts Ray: run under the lock (``flock /tmp/ray.lock pytest``).
"""

from __future__ import annotations

import types
from typing import Any

import mlflow
import pytest
from http_fuzz import fuzz_http_app
from test_fuzz_lessons import lesson_app

from servekit.contract import embedded_registry


def registry_env(tmp_path, model, name: str, artifacts=None, **log_kwargs) -> dict[str, str]:
    """Log ``model`` as version 1 of ``name`` with alias champion (and the file ``artifacts`` under
    ``tables/`` in its run); returns the replica's environment."""
    uri = embedded_registry(tmp_path / name, name)
    with mlflow.start_run():
        if artifacts is not None:
            mlflow.log_artifact(str(artifacts), artifact_path="tables")
        info = mlflow.sklearn.log_model(
            model, name="model", pip_requirements=["scikit-learn"], registered_model_name=name, **log_kwargs
        )
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", info.registered_model_version)
    return {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}


def with_env(deployment, env: dict[str, str]):
    return deployment.options(ray_actor_options={"num_cpus": 0.5, "runtime_env": {"env_vars": env}})


def test_capstone_starter_never_answers_5xx(serve_cluster, tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    env = registry_env(tmp_path, LogisticRegression(max_iter=1000).fit(iris.data, iris.target), "starter")

    def build(nb: types.ModuleType) -> Any:
        return with_env(nb.FlowerClassifier, env).bind("models:/starter@champion")

    with lesson_app("solutions/10_capstone.ipynb", "fuzz10", build) as url:
        print(
            "capstone starter:", fuzz_http_app(url, good={"features": [5.1, 3.5, 1.4, 0.2]}, max_examples=300)
        )


def test_healthcare_reference_never_answers_5xx(serve_cluster, tmp_path):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.datasets import load_breast_cancer
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(data.data, data.target)
    model = CalibratedClassifierCV(FrozenEstimator(linear), method="sigmoid").fit(data.data, data.target)
    trusted = ["sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration"]
    env = registry_env(tmp_path, model, "diagnostic", skops_trusted_types=trusted)

    def build(nb: types.ModuleType) -> Any:
        return with_env(nb.DiagnosticSupport, env).bind("models:/diagnostic@champion")

    notebook = "solutions/capstone/healthcare_diagnostics.ipynb"
    with lesson_app(notebook, "fuzzhc", build) as url:
        good = {"measurements": {n: float(v) for n, v in zip(data.feature_names, data.data[0], strict=True)}}
        print("healthcare reference:", fuzz_http_app(url, good=good, max_examples=300))


def test_recommendations_reference_never_answers_5xx(serve_cluster, tmp_path):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from servekit.movielens import MovieLensUnavailable, load_movielens

    try:
        movielens = load_movielens()
    except MovieLensUnavailable as exc:
        pytest.skip(str(exc))
    ratings, items = movielens["ratings"], movielens["items"]

    def build(nb: types.ModuleType) -> Any:
        # the notebook's data cell (not app code) defines these; fit_tables reads them
        nb.N_USERS, nb.N_ITEMS = ratings["user_id"].max() + 1, ratings["item_id"].max() + 1
        nb.GENRES = sorted({g for gs in items["genres"] for g in gs})
        tables = nb.fit_tables(ratings, items)
        users = list(range(1, 60))
        cands, scores = nb.candidates(tables, users)
        x = nb.features(tables, users, cands, scores)
        ranker = LogisticRegression().fit(
            x, np.arange(len(x)) % 7 == 0
        )  # any ranker: this test is about input
        titles = np.array(["a title"] * nb.N_ITEMS)
        np.savez(tmp_path / "tables.npz", titles=titles, **tables)
        env = registry_env(tmp_path, ranker, "ranker", artifacts=tmp_path / "tables.npz")
        replica = {"num_cpus": 0.5, "runtime_env": {"env_vars": env}}
        ranker_stage = nb.Ranker.options(ray_actor_options=replica).bind("models:/ranker@champion")
        return nb.Recommender.options(ray_actor_options=replica).bind(ranker_stage, "models:/ranker@champion")

    with lesson_app("solutions/capstone/recommendations.ipynb", "fuzzrec", build) as url:
        print(
            "recommendations reference:", fuzz_http_app(url, good={"user_id": 196, "k": 10}, max_examples=300)
        )


def test_sentiment_reference_never_answers_5xx(serve_cluster, tmp_path):
    from lesson07_registry import log_version, make_registry

    uri = make_registry(tmp_path / "registry")
    mlflow.MlflowClient().set_registered_model_alias("sentiment", "champion", log_version())
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}

    def build(nb: types.ModuleType) -> Any:
        options = {"num_cpus": 1, "runtime_env": {"env_vars": env}}
        return nb.FeedbackSentiment.options(ray_actor_options=options).bind("models:/sentiment@champion")

    with lesson_app("solutions/capstone/sentiment_service.ipynb", "fuzzsent", build) as url:
        report = fuzz_http_app(url, good={"text": "Great service!"}, max_examples=200)
        print("sentiment reference:", report)


def test_phishing_reference_never_answers_5xx(serve_cluster, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from servekit.phishing import LABEL, UCI_NAMES, load_phishing

    sites = load_phishing()
    x = sites[list(UCI_NAMES)]
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression(max_iter=1000))
    uri = embedded_registry(tmp_path / "phishing", "phishing")
    with mlflow.start_run():
        mlflow.log_params({"threshold": 0.16})  # the replica reads its threshold from the version's run
        info = mlflow.sklearn.log_model(
            model.fit(x, sites[LABEL]),
            name="model",
            pip_requirements=["scikit-learn"],
            registered_model_name="ph",
        )
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}

    def build(nb: types.ModuleType) -> Any:
        return with_env(nb.PhishingScreen, env).bind(f"models:/ph/{info.registered_model_version}")

    with lesson_app("solutions/capstone/phishing_screening.ipynb", "fuzzphish", build) as url:
        good = {name: float(x.iloc[0][name]) for name in UCI_NAMES}
        print("phishing reference:", fuzz_http_app(url, good=good, max_examples=300))


def test_translation_reference_never_answers_5xx(serve_cluster, tmp_path):
    from servekit.models import ModelUnavailable, resolve_model
    from servekit.paths import REPO_ROOT

    try:
        resolve_model("translation")
    except ModelUnavailable as exc:
        pytest.skip(str(exc))
    uri = embedded_registry(tmp_path / "translator", "translator")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(REPO_ROOT / "course_apps" / "apertium_model.py"),
            model_config={"pair": "eng-spa"},
            pip_requirements=["mlflow"],
            registered_model_name="tr",
        )
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}

    def build(nb: types.ModuleType) -> Any:
        options = {"num_cpus": 1, "runtime_env": {"env_vars": env}}
        return nb.Translator.options(ray_actor_options=options).bind(
            f"models:/tr/{info.registered_model_version}"
        )

    with lesson_app("solutions/capstone/translation_service.ipynb", "fuzztr", build) as url:
        print(
            "translation reference:",
            fuzz_http_app(url, good={"text": "Good morning, friends."}, max_examples=200),
        )
