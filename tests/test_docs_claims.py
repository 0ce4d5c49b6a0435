"""Every name the docs give a reader exists: settings, metrics, make targets, paths, commands.

A newcomer copies names out of README.md and docs/ into a shell, an env file or a dashboard. A
name that no longer exists (a renamed setting, a moved file, a dropped flag) fails them silently
or with a confusing error, so each kind of name is extracted from every page and checked against
the one place that defines it: the settings declaration, a live app's /metrics, the Makefile's
targets, the file tree (and the test functions a path::name points at), and the CLI's parser.
tests/test_docs.py checks the generated tables and the links between pages.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tablestream.config import SETTINGS
from tablestream.download import TOKEN_ENV
from tablestream.server.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_FOLDERS = ("service", "templates", "tests", "bench", "loadtests", "ops", "docs", ".ci")
# Words of the tablestream_ shape that are not metrics: the NDJSON error line's key, and the
# PostgreSQL schema and role names the docs suggest.
NOT_METRICS = {"tablestream_error", "tablestream_bench", "tablestream_reader"}
# Names of files the service or a tool writes, named in the docs as what appears at run time.
MADE_AT_RUN_TIME = {"data/demo.sqlite3", "docs/BENCHMARKS.md"}

CODE = re.compile(r"`([^`\n]+)`")
# A command as typed: at the start of a line or after a prompt, &&, a pipe or a venv's bin/ (a
# log line's "WARNING tablestream access: ..." is not one).
COMMAND = re.compile(
    r"(?:^\s*|\$ |&& |\| |; |bin/)tablestream ([a-z][a-z-]*(?: [a-z][a-z-]*)?)(.*)"
)


def _texts() -> list[tuple[str, str]]:
    return [(page.relative_to(ROOT).as_posix(), page.read_text(encoding="utf-8")) for page in PAGES]


def _code_spans() -> list[tuple[str, str]]:
    """(page, text) of every inline code span and every line of every fenced block."""
    spans = []
    for name, text in _texts():
        fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
        spans += [(name, line) for block in fenced for line in block.splitlines()]
        outside = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
        spans += [(name, span) for span in CODE.findall(outside)]
    return spans


def test_every_setting_the_docs_name_is_declared():
    # The download client's token variable is the client's, declared once in download.py.
    declared = {s.env for s in SETTINGS} | {TOKEN_ENV}
    unknown = sorted(
        {
            f"{name}: {env}"
            for name, text in _texts()
            for env in re.findall(r"\bTABLESTREAM_[A-Z0-9_]*[A-Z0-9]\b", text)
            if env not in declared
        }
    )
    assert not unknown, "settings named in the docs but not declared:\n" + "\n".join(unknown)


def test_every_metric_the_docs_name_is_exported(client):
    client.get("/tables/synthetic?limit=10").close()
    exposition = client.get("/metrics").get_data(as_text=True)
    names = set()
    for family in text_string_to_metric_families(exposition):
        names |= {family.name, family.name + ("_total" if family.type == "counter" else "")}
        names |= {sample.name for sample in family.samples}
    unknown = sorted(
        {
            f"{name}: {metric}"
            for name, text in _texts()
            for metric in re.findall(r"\btablestream_[a-z0-9_]*[a-z0-9]\b", text)
            if metric not in names and metric not in NOT_METRICS
        }
    )
    assert not unknown, "metrics named in the docs but not exported:\n" + "\n".join(unknown)


def test_every_make_target_the_docs_name_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, flags=re.MULTILINE))
    unknown = sorted(
        {
            f"{name}: make {target}"
            for name, span in _code_spans()
            for target in re.findall(r"\bmake ([a-z][a-z0-9-]*)", span)
            if target not in targets
        }
    )
    assert not unknown, "make targets named in the docs but not in the Makefile:\n" + "\n".join(
        unknown
    )


def _path_claims() -> list[tuple[str, str, str]]:
    """(page, path, test or function name or '') for every span that names a project file."""
    claims = []
    pattern = re.compile(
        r"(?<![\w./-])((?:{})/[\w./-]*\w)(?:::(\w+))?".format("|".join(map(re.escape, TOP_FOLDERS)))
    )
    for name, span in _code_spans():
        for path, function in pattern.findall(span):
            if not any(c in path for c in "<*{"):
                claims.append((name, path, function))
    return claims


def test_every_file_path_the_docs_name_exists():
    missing = []
    for name, path, function in _path_claims():
        target = ROOT / path
        if path in MADE_AT_RUN_TIME:
            continue
        if not target.exists():
            missing.append(f"{name}: {path}")
        elif function and not re.search(
            rf"^\s*(?:async )?def {function}\b", target.read_text(), flags=re.MULTILINE
        ):
            missing.append(f"{name}: {path}::{function} (no such function)")
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(
        sorted(set(missing))
    )


def test_the_checks_find_the_names_the_docs_give():
    """A pattern that stopped matching would pass every check above without checking anything."""
    assert len(_path_claims()) >= 100
    assert sum(1 for _, path, function in _path_claims() if function) >= 5
    assert sum(1 for _, span in _code_spans() if re.search(COMMAND, span)) >= 20
    assert sum(1 for _, span in _code_spans() if re.search(r"\bmake [a-z]", span)) >= 30


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_cli_command_and_flag_the_docs_name_exists():
    top = _parser()
    commands = _subparsers(top)
    wrong = []
    for name, span in _code_spans():
        for match in re.finditer(COMMAND, span):
            words, rest = match[1].split(), match[2]
            parser = commands.get(words[0])
            if parser is None:
                if not words[0].startswith("-"):
                    wrong.append(f"{name}: tablestream {words[0]} (no such command)")
                continue
            deeper = _subparsers(parser)
            if deeper and len(words) > 1:
                if words[1] not in deeper:
                    wrong.append(f"{name}: tablestream {' '.join(words)} (no such command)")
                    continue
                parser = deeper[words[1]]
            options = {o for action in parser._actions for o in action.option_strings}
            options |= {o for action in top._actions for o in action.option_strings}
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest.split("|")[0]):
                if flag not in options:
                    wrong.append(f"{name}: tablestream {' '.join(words)} {flag} (no such flag)")
    assert not wrong, "commands named in the docs that the CLI lacks:\n" + "\n".join(
        sorted(set(wrong))
    )


@pytest.mark.parametrize("kind", ["setting", "path"])
def test_the_checks_above_catch_a_name_that_does_not_exist(kind, tmp_path, monkeypatch):
    """Proof that the checks can fail: a page naming a setting or a path that does not exist."""
    page = tmp_path / "bad.md"
    page.write_text(
        "Set `TABLESTREAM_NO_SUCH_SETTING=1`." if kind == "setting" else "See `service/nope.py`."
    )
    monkeypatch.setitem(globals(), "PAGES", [page])
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    check = (
        test_every_setting_the_docs_name_is_declared
        if kind == "setting"
        else test_every_file_path_the_docs_name_exists
    )
    with pytest.raises(AssertionError):
        check()


def test_the_footer_the_docs_show_is_the_one_a_complete_page_ends_with(client):
    body = client.get("/tables/synthetic?limit=5").get_data(as_text=True)
    shown = {tag for _, text in _texts() for tag in re.findall(r"<footer [^>`]*>", text)}
    assert shown, "no page shows the success footer any more"
    for tag in shown:
        assert tag.replace('"N"', '"5"') in body, tag


def test_every_url_of_the_readme_table_answers_as_it_says(client):
    """The README's URL table, with its placeholders filled in from the demo data."""
    table = README_URLS.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(table) >= 8, table
    stream = client.get("/tables/orders?limit=3")
    request_id = stream.headers["X-Request-ID"]
    stream.close()  # else its body is closed by the garbage collector, in a later test
    filled = {"<name>": "orders", "<request id>": request_id, "N": "5", "M": "2"}
    for path in table:
        for placeholder, value in filled.items():
            path = path.replace(placeholder, value)
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        response.close()


# `GET /path` in the first column of the README's URL table.
README_URLS = re.compile(r"^\| `GET (/[^`]*)`", re.MULTILINE)
