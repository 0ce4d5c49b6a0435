"""The README documents every setting (regenerate the rows with `tablestream settings`)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from service.config import settings_markdown

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table_with_its_default():
    missing = [row for row in settings_markdown().splitlines() if row not in README]
    assert not missing, "README is out of date; run `make readme`:\n" + "\n".join(missing)


def test_every_metric_the_service_exports_is_in_the_readme_table(client):
    client.get("/tables/synthetic?limit=10").close()
    text = client.get("/metrics").get_data(as_text=True)
    names = {
        family.name
        for family in text_string_to_metric_families(text)
        if family.name.startswith("tablestream_")
    }
    assert len(names) >= 11
    suffix = {"counter": "_total"}
    missing = []
    for family in text_string_to_metric_families(text):
        if family.name in names:
            shown = family.name + suffix.get(family.type, "")
            if f"| `{shown}` |" not in README:
                missing.append(shown)
    assert not missing, f"metrics missing from the README table: {missing}"
