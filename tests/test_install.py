"""What a user installs is what these tests run: the wheel built from the sdist, in its own venv.

The rest of the suite runs against the editable install of ``.venv-dev``, whose import finder
resolves any module from the source tree: a wheel missing a subpackage still passes every one of
those tests. So these build the distribution as an index would (``python -m build``: the sdist,
then the wheel from the sdist), compare the wheel's files with the tree, install it with pip into
a fresh venv outside the checkout, and drive that venv's ``tablestream`` from a folder that holds
no source. ``make run`` itself is proved by ``tests/test_make_run.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tablestream.testing import ServerProcess, httpraw

from .servers import ROOT
from .tablehtml import parse_table
from .wheel import build, install

pytestmark = pytest.mark.slow

DEMO_ORDERS = 3000


def tree_files() -> set[str]:
    """Every file the wheel must hold, by its path inside the wheel (``tablestream/...``)."""
    wanted = {
        "tablestream/" + p.relative_to(ROOT / "service").as_posix()
        for p in (ROOT / "service").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    wanted |= {
        "tablestream/templates/" + p.relative_to(ROOT / "templates").as_posix()
        for p in (ROOT / "templates").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    return wanted


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it, as ``python -m build`` makes them for an index."""
    return build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (path,) = dist.glob("tablestream-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh venv, outside the checkout, with the wheel (and its dependencies) installed."""
    return install(wheel, tmp_path_factory.mktemp("user") / "venv")


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory with no source folder in it or above it."""
    where = tmp_path / "elsewhere"
    where.mkdir()
    return where


def user_env(venv: Path) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH, the venv's bin first."""
    return {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv.parent)}


def run(venv: Path, cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``argv[0]`` from the venv's bin, as a user's shell would run it."""
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]],
        env={**user_env(venv), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_wheel_holds_every_module_template_and_static_file_of_the_tree(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if ".dist-info/" not in n}
    wanted = tree_files()
    assert wanted - shipped == set(), "in the tree but not in the wheel"
    assert shipped - wanted == set(), "in the wheel but not in the tree"
    assert {"tablestream/access/__init__.py", "tablestream/templates/table.html"} <= shipped


def test_the_wheel_installs_one_import_package_named_tablestream(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["tablestream"]
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"tablestream"}


def test_check_wheel_contents_finds_nothing_wrong_with_the_wheel(wheel):
    result = subprocess.run(
        [Path(sys.executable).with_name("check-wheel-contents"), wheel],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sdist_carries_what_the_wheel_is_built_from(dist):
    (sdist,) = dist.glob("tablestream-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"pyproject.toml", "setup.py", "README.md", "service/access/gate.py"} <= names
    assert "templates/tables/demo/orders.html" in names


def test_the_installed_copy_reports_its_version_and_is_imported_from_site_packages(
    installed, elsewhere
):
    version = run(installed, elsewhere, "tablestream", "--version")
    assert version.returncode == 0, version.stderr
    module = run(installed, elsewhere, "python", "-m", "tablestream", "--version")
    assert module.returncode == 0, module.stderr
    assert version.stdout.split() == module.stdout.split() == ["tablestream", "0.1.0"]
    where = run(
        installed, elsewhere, "python", "-c", "import tablestream; print(tablestream.__file__)"
    )
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout + where.stderr
    service = run(installed, elsewhere, "python", "-c", "import service")
    assert "No module named 'service'" in service.stderr


def test_the_installed_copy_makes_the_demo_database_serves_every_format_and_adds_a_token(
    installed, elsewhere, tmp_path
):
    db = tmp_path / "demo.sqlite3"
    made = run(installed, elsewhere, "tablestream", "demo-db", str(db), "--rows", str(DEMO_ORDERS))
    assert made.returncode == 0 and db.is_file(), made.stderr
    env = {**user_env(installed), "TABLESTREAM_DB": str(db), "TABLESTREAM_SYNTHETIC_ROWS": "100"}
    server = ServerProcess(
        env,
        tmp_path / "server.log",
        argv=[str(installed / "bin" / "tablestream"), "serve"],
        cwd=elsewhere,
    )
    try:
        url = server.url
        page = httpraw.get(f"{url}/tables/synthetic")
        orders = httpraw.get(f"{url}/tables/orders?limit=50")
        csv = httpraw.get(f"{url}/tables/orders.csv?limit=10")
        ndjson = httpraw.get(f"{url}/tables/orders.ndjson?limit=10")
        meta = httpraw.get(f"{url}/tables/orders.json")
        script = httpraw.get(f"{url}/static/tablestream.js")
        css = httpraw.get(f"{url}/static/tablestream.css")
        metrics = httpraw.get(f"{url}/metrics")
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert "tablestream serving " in log and "(version 0.1.0)" in log
    assert page.status == 200 and parse_table(page.text).rows_sent == 100
    parsed = parse_table(orders.text)
    assert orders.status == 200 and parsed.rows_sent == 50 and len(parsed.rows) == 50
    assert 'class="ts-badge ts-badge-' in orders.text  # the demo orders row template, installed
    assert csv.status == 200 and len(csv.text.splitlines()) == 11
    assert csv.text.splitlines()[0].startswith("id,customer_id,product")
    lines = ndjson.text.splitlines()
    assert ndjson.status == 200 and len(lines) == 10 and json.loads(lines[0])["id"] == 1
    assert meta.status == 200 and "customer_id" in json.dumps(json.loads(meta.text))
    assert script.status == 200 and len(script.body) > 1000
    assert css.status == 200 and b"position: sticky" in css.body
    assert metrics.status == 200 and b"tablestream_" in metrics.body

    tokens = tmp_path / "tokens.json"
    added = run(
        installed,
        elsewhere,
        "tablestream",
        "token",
        "add",
        "reports",
        "--tables",
        "orders",
        TABLESTREAM_TOKENS_FILE=str(tokens),
    )
    assert added.returncode == 0 and tokens.is_file(), added.stderr
    listed = run(
        installed, elsewhere, "tablestream", "token", "list", TABLESTREAM_TOKENS_FILE=str(tokens)
    )
    assert listed.returncode == 0 and "reports" in listed.stdout, listed.stderr
