"""The docs stay true to the code: settings, metrics, the README's size and its links.

The settings table in docs/settings.md is generated (`make readme`) from the one declaration of
the settings, and the metrics a running app exports are listed in docs/metrics.md and named in
the README. A newcomer reads the README first, so it stays short and every page it points to
exists.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from prometheus_client.parser import text_string_to_metric_families

from tablestream.config import SETTINGS, settings_markdown

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTINGS_PAGE = (DOCS / "settings.md").read_text(encoding="utf-8")
METRICS_PAGE = (DOCS / "metrics.md").read_text(encoding="utf-8")
README_MAX_LINES = 200
# A relative markdown link to a .md file, with an optional #anchor: [text](path.md#anchor)
MD_LINK = re.compile(r"\]\((?!https?:)([^)#\s]+\.md)(?:#([^)\s]+))?\)")


def _generator() -> ModuleType:
    """docs/generate_settings.py, loaded from its path (docs/ is not a package)."""
    path = DOCS / "generate_settings.py"
    spec = importlib.util.spec_from_file_location("generate_settings", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _exported_metric_names(client) -> list[str]:
    """Every tablestream_* name a live app exports, as written in docs (counters with _total)."""
    client.get("/tables/synthetic?limit=10").close()
    text = client.get("/metrics").get_data(as_text=True)
    suffix = {"counter": "_total"}
    return sorted(
        family.name + suffix.get(family.type, "")
        for family in text_string_to_metric_families(text)
        if family.name.startswith("tablestream_")
    )


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces → '-'."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_settings_page_is_exactly_what_make_readme_generates():
    generated = _generator().with_table(SETTINGS_PAGE, settings_markdown())
    assert generated == SETTINGS_PAGE, "docs/settings.md is out of date; run `make readme`"


def test_every_setting_has_a_row_in_the_settings_page_table():
    missing = [s.env for s in SETTINGS if f"| `{s.env}` |" not in SETTINGS_PAGE]
    assert len(SETTINGS) >= 40
    assert not missing, f"settings missing from docs/settings.md: {missing}"


def test_every_exported_metric_has_a_row_in_the_metrics_page_table(client):
    names = _exported_metric_names(client)
    assert len(names) >= 11
    missing = [name for name in names if f"| `{name}` |" not in METRICS_PAGE]
    assert not missing, f"metrics missing from the docs/metrics.md table: {missing}"


def test_every_exported_metric_is_named_in_the_readme(client):
    missing = [name for name in _exported_metric_names(client) if f"`{name}`" not in README]
    assert not missing, f"metrics not named in README.md: {missing}"


def test_the_readme_main_settings_show_the_declared_defaults():
    declared = {s.env: s.default for s in SETTINGS}
    shown = re.findall(r"^\| `(TABLESTREAM_\w+)` \| (?:`([^`]*)`|\(empty\)) \|", README, re.M)
    assert len(shown) >= 8
    wrong = [(env, default) for env, default in shown if declared.get(env) != default]
    assert not wrong, f"README main settings differ from service/config: {wrong}"


def test_the_readme_stays_short():
    lines = len(README.splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move depth to docs/"


def test_every_docs_page_the_readme_links_to_exists():
    linked = {path for path, _ in MD_LINK.findall(README) if path.startswith("docs/")}
    assert len(linked) >= 10
    missing = sorted(path for path in linked if not (ROOT / path).is_file())
    assert not missing, f"README.md links to missing pages: {missing}"


def test_every_docs_page_is_in_the_readme_index():
    pages = {f"docs/{page.name}" for page in DOCS.glob("*.md")}
    unlisted = sorted(page for page in pages if f"]({page})" not in README)
    assert not unlisted, f"docs pages missing from the README's index: {unlisted}"


def test_links_between_pages_reach_an_existing_page_and_heading():
    broken = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for path, anchor in MD_LINK.findall(page.read_text(encoding="utf-8")):
            target = (page.parent / path).resolve()
            if not target.is_file():
                broken.append(f"{page.name}: {path} (no such file)")
            elif anchor and anchor not in _anchors(target.read_text(encoding="utf-8")):
                broken.append(f"{page.name}: {path}#{anchor} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
