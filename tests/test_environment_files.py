"""requirements.txt is the one source of versions: everything else must agree with it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[a-z,]+\])?)==([^\s;]+)", line)
        assert m, f"{path.name}: not an exact pin: {line!r}"
        out[m.group(1).lower()] = m.group(2)
    return out


def test_every_requirement_is_pinned_and_torch_exactly():
    req = pins(ROOT / "requirements.txt")
    assert req["torch"] == "2.13.0"
    assert req["ray[serve]"] == "2.60.0"
    for name in ("transformers", "mlflow", "fastapi", "requests", "jupyterlab", "nbval"):
        assert name in req, name


def test_binder_requirements_match_except_cpu_torch():
    req, binder = pins(ROOT / "requirements.txt"), pins(ROOT / "binder" / "requirements.txt")
    assert binder.pop("torch") == req.pop("torch") + "+cpu"
    assert binder == req
    assert (
        "--extra-index-url https://download.pytorch.org/whl/cpu"
        in (ROOT / "binder" / "requirements.txt").read_text()
    )


def test_conda_environment_installs_the_same_pins():
    env = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*- python=3\.11\s*$", env, re.M)
    assert re.search(r"^\s*- -r requirements\.txt\s*$", env, re.M)
    assert re.search(r"^\s*- -e \.\s*$", env, re.M)


def test_binder_files():
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    post = (ROOT / "binder" / "postBuild").read_text().splitlines()
    assert post[0].startswith("#!") and post[1] == "set -e"
    assert set((ROOT / "binder" / "apt.txt").read_text().split()) == {"apertium", "apertium-eng-spa"}


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_ray_import_does_not_pay_for_rfc3987_syntax():
    """Makefile removes rfc3987-syntax: imported by jsonschema in every Ray process, it cost ~3 s each."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import ray, sys; print('rfc3987_syntax' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.strip()
    assert out == "False", (
        "run `make setup` (it uninstalls rfc3987-syntax) - every Ray worker start is ~3 s slower"
    )


def test_every_install_route_runs_the_same_post_install_steps():
    """make setup, Binder and the README's conda command share scripts/post_install.sh."""
    script = (ROOT / "scripts" / "post_install.sh").read_text()
    assert "uninstall" in script and "rfc3987-syntax" in script and "-e ." in script
    assert "bash scripts/post_install.sh" in (ROOT / "Makefile").read_text()
    assert "bash scripts/post_install.sh" in (ROOT / "binder" / "postBuild").read_text()
    conda = re.search(r"conda env create -f environment\.yml[^\n`]*", (ROOT / "README.md").read_text())
    assert conda and "bash scripts/post_install.sh" in conda.group(0), (
        "README's conda route runs post_install.sh"
    )
