"""The batched row filter is byte-identical to escaping cell by cell in Jinja, for any cells."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import Environment
from markupsafe import escape

from tablestream.sources.synthetic import synthetic_batch, synthetic_row
from tablestream.stream.markup import has_markup_characters, rows_html

_PER_CELL = Environment(autoescape=True).from_string(
    "{% for row in batch %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>\n"
    "{% endfor %}"
)

cells = st.text(alphabet=st.sampled_from("ab<>&\"' é\x1e\x1f\n\x00"), max_size=8)


@given(batch=st.lists(st.lists(cells, min_size=1, max_size=5), max_size=12))
def test_filter_output_equals_jinja_cell_loop_for_any_cells(batch):
    assert str(rows_html(batch)) == _PER_CELL.render(batch=batch)


def test_cells_holding_the_separators_are_not_taken_for_cell_or_row_breaks():
    batch = [["a\x1fb", "c"], ["d\x1e", "e"]]
    html = str(rows_html(batch))
    assert html == "<tr><td>a\x1fb</td><td>c</td></tr>\n<tr><td>d\x1e</td><td>e</td></tr>\n"


def test_ragged_rows_that_balance_the_separator_count_still_render_row_by_row():
    batch = [["x", "y", "z"], ["a\x1f\x1fb"]]  # 2 + 0 breaks expected, 4 present
    assert str(rows_html(batch)) == _PER_CELL.render(batch=batch)


@pytest.mark.parametrize(
    "payload",
    ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "' onmouseover='x", "&lt;"],
)
def test_markup_in_cells_is_escaped(payload):
    html = str(rows_html([[payload, "ok"]]))
    assert "<script" not in html and "<img" not in html and "'" not in html.replace("&#39;", "")
    assert html.startswith("<tr><td>") and html.endswith("</td><td>ok</td></tr>\n")


def test_template_markup_strings_are_used_as_given():
    html = str(rows_html([["1", "2"]], '<tr class="r"><td>', '</td><td class="n">', "</td></tr>"))
    assert html == '<tr class="r"><td>1</td><td class="n">2</td></tr>'


def test_empty_batch_renders_nothing():
    assert str(rows_html([])) == ""


@pytest.mark.parametrize("start,stop", [(0, 1000), (86_000, 90_000), (9_999_000, 10_000_000)])
def test_fast_synthetic_batches_equal_the_row_definition(start, stop):
    assert synthetic_batch(start, stop) == [synthetic_row(i) for i in range(start, stop)]


@given(text=st.text() | st.text(alphabet="&<>\"'a\x1f\x1e"))
def test_text_escapes_to_itself_exactly_when_it_has_no_markup_characters(text):
    """What lets a batch (or a row template's column) skip escaping altogether."""
    assert has_markup_characters(text) == (str(escape(text)) != text)
