"""A compiled row template renders exactly what Jinja renders row by row, for any cells.

The property: random batches (markup characters, both separators, empty, NULL, unicode, long
cells) x random row templates built from the pieces a table's template is made of (classes,
filters, links, conditionals, loops over cells, `%` and separators in the markup) → the
compiled renderer's output == ``render_row_by_row`` (the row block rendered by Jinja once per
row, autoescaping). Templates that would let a cell out unescaped are refused, never rendered.
"""

from __future__ import annotations

import re
import shutil
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import DictLoader, Environment
from markupsafe import Markup

from tablestream import create_app
from tablestream.sources.cells import format_batch
from tablestream.sources.synthetic import SyntheticTable
from tablestream.stream.markup import rows_html
from tablestream.stream.rowfilters import FILTERS, date, money, money_column
from tablestream.stream.rowtemplate import (
    RowTemplateError,
    RowTemplates,
    compile_row_block,
    render_row_by_row,
    row_block,
)
from tablestream.testing import httpraw
from tablestream.views import ROW_TEMPLATES_KEY

from .conftest import DEMO_ORDERS
from .tablehtml import parse_table

COLUMNS = ["id", "name", "total", "when", "status"]

# One cell's markup each; {c} is a column name, {i} its position, {d} another column's name.
PIECES = [
    '<td class="c-{c}">{{{{ row.{c} }}}}</td>',
    "<td>{{{{ row[{i}] }}}}</td>",
    '<td>{{{{ row["{c}"] }}}}</td>',
    '<td class="ts-num">{{{{ row.{c}|money }}}}</td>',
    "<td>{{{{ row.{c}|money(0) }}}}</td>",
    '<td>{{{{ row.{c}|date("%d %b %Y") }}}}</td>',
    "<td>{{{{ row.{c}|int }}}} {{{{ row.{c}|float }}}}</td>",
    "<td>{{{{ row.{c}|upper }}}}{{{{ row.{c}|truncate(4) }}}}</td>",
    '<td>{{{{ row.{c}|replace("a", "<&>") }}}}</td>',
    "<td>{{{{ row.{c}|e }}}}|{{{{ row.{c}|length }}}}</td>",
    '<td><a href="/x?id={{{{ row.{c}|int + 1 }}}}&amp;q={{{{ row.{c} }}}}">'
    "{{{{ row.{d} }}}}</a></td>",
    '<td{{% if row.{c} == "a" %}} class="hit"{{% elif row.{c} %}} class="x"{{% endif %}}>.</td>',
    '<td class="{{{{ "on" if row.{c} else "off" }}}}">{{{{ row.{c} ~ "/" ~ row.{d} }}}}</td>',
    "<td>{{{{ row.{c} + row.{d} }}}}{{{{ row.{c} == row.{d} }}}}{{{{ -(row.{c}|int) }}}}</td>",
    '<td>{{{{ "!" if row.{c} == "a" }}}}{{{{ row.{c}|default("-") }}}}</td>',
    '<td>{{{{ "%s=%s" % (row.{c}, 1) }}}}{{{{ "<b>"|safe }}}}</td>',
    "<td>{{% if row.{c} %}}<b>{{{{ row.{c} }}}}</b>{{% endif %}}</td>",
    "{{% for cell in row %}}<td>{{{{ loop.index }}}}:{{{{ cell }}}}</td>{{% endfor %}}",
    "{{% set x = row.{c} %}}<td>{{{{ x }}}}{{{{ columns|length }}}}</td>",
    "<td>100% {{{{ row.{c} }}}}\x1f{{{{ row.{d} }}}}\x1e</td>",
    '<td{{% if "a" in row.{c} %}} class="a"{{% endif %}}>{{{{ row.{c} not in row.{d} }}}}</td>',
    "<td{{% if not row.{d} %}} hidden{{% endif %}}>{{{{ row.{c}|float >= 1.5 }}}}</td>",
    "<td>{{{{ row.{c}|int // 2 }}}} {{{{ (row.{c}|int) ** 2 % 7 }}}}{{{{ row.{c} * 2 }}}}</td>",
    '<td{{% if row.{c} == "a" or row.{d} and row.{c}|int > 2 %}} class="o"{{% endif %}}>.</td>',
]

clean_cell = st.one_of(
    st.text(alphabet=st.sampled_from("ab<>&\"' é€😀\x1e\n\x00%0123456789.-"), max_size=8),
    st.sampled_from(["", "31.0", "1414.8", "-2", "1e3", "nan", "2023-01-01 00:00:29", "a"]),
    st.text(max_size=300),
)
# The unit separator itself, and NULL as a source other than cells.py might hand it (None):
# the batch path cannot take them, the batch goes per row.
any_cell = st.one_of(clean_cell, st.none(), st.text(alphabet="a\x1f<", max_size=4))
batches = st.one_of(
    st.lists(st.tuples(*[clean_cell] * len(COLUMNS)), max_size=12),
    st.lists(st.tuples(*[any_cell] * len(COLUMNS)), max_size=12),
)
rows_markup = st.lists(
    st.tuples(
        st.sampled_from(PIECES),
        st.sampled_from(range(len(COLUMNS))),
        st.sampled_from(range(len(COLUMNS))),
    ),
    min_size=1,
    max_size=6,
)
row_start = st.sampled_from(
    ["<tr>", '<tr class="r">', "<tr%>", '<tr{% if row.status %} class="s"{% endif %}>']
)


def _environment(templates: dict[str, str]) -> Environment:
    env = Environment(autoescape=True, loader=DictLoader({"table.html": "", **templates}))
    env.filters.update(FILTERS)
    return env


def _template(start: str, pieces: list[tuple[str, int, int]]) -> str:
    cells = "".join(p.format(c=COLUMNS[i], i=i, d=COLUMNS[j]) for p, i, j in pieces)
    return '{% extends "table.html" %}{% block row %}' + start + cells + "</tr>\n{% endblock %}"


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=row_start, pieces=rows_markup, batch=batches)
def test_a_compiled_row_template_renders_what_jinja_renders_row_by_row(start, pieces, batch):
    env = _environment({"t.html": _template(start, pieces)})
    render, _ = compile_row_block(env, "t.html", row_block(env, "t.html"), COLUMNS)
    try:
        expected = render_row_by_row(env, "t.html", batch, COLUMNS)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            render(batch)
        return
    assert str(render(batch)) == expected


@pytest.mark.parametrize(
    "row, path",
    [
        ('<tr><td class="n">{{ row.total|money }}</td><td>{{ row.id|int - 1 }}</td></tr>', "batch"),
        ('<tr{% if row.status == "x" %} class="x"{% endif %}><td>{{ row[1] }}</td></tr>', "batch"),
        ("<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>", "per-row"),
        ("<tr>{% if row.id %}<td>{{ row.id }}</td>{% endif %}</tr>", "per-row"),
    ],
)
def test_markup_that_does_not_depend_on_values_takes_the_batch_path(row, path):
    env = _environment({"t.html": "{% block row %}" + row + "{% endblock %}"})
    assert compile_row_block(env, "t.html", row_block(env, "t.html"), COLUMNS)[1] == path


@pytest.mark.parametrize(
    "row, reason",
    [
        ("<td>{{ row.name|safe }}</td>", "|safe on a cell"),
        ("<td>{{ (row.name ~ '!')|safe }}</td>", "|safe on a cell"),
        ("<td>{{ row.nope }}</td>", "no column 'nope'"),
        ("<td>{{ row['nope'] }}</td>", "no column 'nope'"),
        ("<td>{{ loop.index }}</td>", "`loop` is not defined"),
        ("{% autoescape false %}<td>{{ row.name }}</td>{% endautoescape %}", "autoescape"),
    ],
)
def test_templates_that_could_send_a_cell_unescaped_or_name_no_column_are_refused(row, reason):
    env = _environment({"t.html": "\n{% block row %}" + row + "{% endblock %}"})
    with pytest.raises(RowTemplateError, match="t.html, line 2: .*" + reason.replace("|", r"\|")):
        compile_row_block(env, "t.html", row_block(env, "t.html"), COLUMNS)


def test_a_table_without_its_own_row_block_keeps_the_default_rows_html():
    env = _environment({"tables/plain.html": '{% extends "table.html" %}'})
    templates = RowTemplates(env)
    assert templates.page("plain") == "tables/plain.html"
    assert templates.page("other") == "table.html"
    assert templates.compiled("plain", COLUMNS) == (rows_html, "default")
    assert templates.compiled("other", COLUMNS) == (rows_html, "default")


def test_a_row_template_is_compiled_once_per_table_and_column_list():
    env = _environment(
        {"tables/t.html": "{% block row %}<tr><td>{{ row[0] }}</td></tr>{% endblock %}"}
    )
    templates = RowTemplates(env)
    first = templates.renderer("t", COLUMNS)
    assert templates.renderer("t", list(COLUMNS)) is first
    assert templates.renderer("t", ["other"]) is not first


@pytest.mark.parametrize(
    "value, shown",
    [
        ("1414.8", "1,414.80"),
        ("31.0", "31.00"),
        ("-0.005", "-0.01"),
        ("", ""),
        (None, ""),
        ("n/a", "n/a"),
    ],
)
def test_money_shows_two_decimals_and_leaves_what_is_not_a_number(value, shown):
    assert money(value) == shown


@pytest.mark.parametrize(
    "value, shown",
    [
        ("2023-01-01 00:00:29", "2023-01-01"),
        ("2023-02-15", "2023-02-15"),
        ("", ""),
        ("soon", "soon"),
    ],
)
def test_date_formats_iso_dates_and_leaves_what_is_not_one(value, shown):
    assert date(value) == shown


amounts = st.one_of(
    st.from_regex(r"\A-?0*[0-9]{0,12}(\.[0-9]{0,3})?\Z"),
    st.floats(allow_nan=False).map(repr),
    st.decimals(places=2, allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(
        ["", "0.00", "999.99", "1000.0", "999999999.99", "1e3", "nan", " 1.5", "1.5\n2"]
    ),
    st.text(alphabet="0123456789.-\n ", max_size=12),
    st.none(),
)


def _not_a_number(value: str | None) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return value != ""
    return False


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(max_examples=500, deadline=None)
@given(values=st.lists(amounts, max_size=20))
def test_money_of_a_column_is_money_of_each_value_or_refused(values):
    """The batch path's |money: money() of every value, or an exception (then the batch is
    rendered per row, where money() itself shows what is not a number as it is)."""
    try:
        got = money_column(values)
    except (TypeError, ValueError):
        assert any(_not_a_number(v) for v in values)  # money() would show it as it is
        return
    assert got == [money(v) for v in values]


# Columns of amounts as databases write them, with now and then one that is almost one.
well_formed = st.one_of(st.just(""), st.from_regex(r"\A(0|[1-9][0-9]{0,8})\.[0-9]{2}\Z"))
near_misses = st.sampled_from(
    ["0", "01.00", "00.12", ".12", "1.5", "1.234", "1..00", "1 .00", "1234567890.00", "-1.00"]
)
near_misses |= st.sampled_from(
    ["1.0.0", ".", "1e3", "12.3\n", " 12.30", "12.30 ", "0.5", "٣.00", "1,234.00", "0.123"]
)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@settings(max_examples=500, deadline=None)
@given(
    values=st.lists(well_formed, min_size=1, max_size=30),
    miss=st.none() | st.tuples(st.integers(min_value=0), near_misses),
)
def test_money_of_a_column_of_amounts_is_money_of_each_value(values, miss):
    """The fixed-width path of ``money_column`` (amounts with two decimals) and its refusals."""
    if miss is not None:
        values[miss[0] % len(values)] = miss[1]
    try:
        got = money_column(values)
    except (TypeError, ValueError):
        assert miss is not None and _not_a_number(miss[1])
        return
    assert got == [money(v) for v in values]


# --- the demo tables' templates, served by a real waitress -------------------------------


@pytest.fixture
def served_app(thread_server, settings_for, demo_db, tmp_path):
    db = tmp_path / "demo.sqlite3"
    shutil.copyfile(demo_db, db)
    with sqlite3.connect(db) as conn:  # the same rows, with no template of their own
        conn.execute("CREATE VIEW orders_plain AS SELECT * FROM orders")
    app = create_app(settings_for(db=db))
    return app, thread_server(app).url


def _body_rows(page: str) -> str:
    """The rows of a page, without the <tbody> breaks between batches and the resume point
    after each batch (<!--ts-after URL-->)."""
    rows = page[page.index("<tbody>") + len("<tbody>\n") : page.index("</tbody>\n</table>")]
    return re.sub(r"<!--ts-after [^>]*-->", "", rows).replace("</tbody><tbody>\n", "")


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_the_orders_page_is_its_row_template_rendered_row_by_row_for_every_row(served_app, demo_db):
    app, url = served_app
    response = httpraw.get(f"{url}/tables/orders")
    assert response.status == 200 and response.terminated
    with sqlite3.connect(demo_db) as conn:
        cursor = conn.execute("SELECT * FROM orders ORDER BY id")
        columns = [d[0] for d in cursor.description]
        rows = format_batch(cursor.fetchall())
    with app.app_context():
        expected = render_row_by_row(app.jinja_env, "tables/demo/orders.html", rows, columns)
    assert _body_rows(response.text) == expected
    table = parse_table(response.text)
    assert table.rows_sent == DEMO_ORDERS == len(table.rows)


def test_the_orders_page_shows_formatted_totals_whole_times_badges_and_customer_links(
    served_app, demo_db
):
    _, url = served_app
    with sqlite3.connect(demo_db) as conn:
        _, customer, _, _, total, placed_at, status, _ = conn.execute(
            "SELECT * FROM orders WHERE id = 1"
        ).fetchone()
    page = httpraw.get(f"{url}/tables/orders?limit=300").text
    # The table's own header classes, with the service's sort link in each header (queries).
    assert (
        '<th scope="col" class="ts-num"><a href="/tables/orders?limit=300&amp;_sort=total">'
        "total</a></th>"
    ) in page
    first = _body_rows(page).splitlines()[0]
    assert f'<a href="customers?id={customer}">{customer}</a>' in first
    assert f'<td class="ts-num">{total:,.2f}</td>' in first
    assert f'<td class="ts-wide ts-time">{placed_at}</td>' in first
    assert f'<span class="ts-badge ts-badge-{status}">{status}</span>' in first
    assert 'class="ts-void"' in page  # refunded and cancelled orders are dimmed
    # The customer link leads to that customer's row.
    linked = parse_table(httpraw.get(f"{url}/tables/customers?id={customer}").text)
    assert [row[0] for row in linked.rows] == [str(customer)]


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_csv_and_ndjson_are_the_same_bytes_with_or_without_a_row_template(served_app, fmt):
    _, url = served_app
    own = httpraw.get(f"{url}/tables/orders.{fmt}?limit=5000")
    plain = httpraw.get(f"{url}/tables/orders_plain.{fmt}?limit=5000")
    assert own.status == plain.status == 200 and own.terminated
    assert own.body == plain.body and b"<" not in own.body.replace(b"<USB-C>", b"")


def test_a_table_without_a_template_keeps_the_default_row_markup(served_app):
    _, url = served_app
    page = httpraw.get(f"{url}/tables/orders_plain?limit=2").text
    assert (
        '<thead><tr><th scope="col"><a href="/tables/orders_plain?limit=2&amp;_sort=id">id</a></th>'
        in page
    )
    assert _body_rows(page).startswith("<tr><td>1</td><td>488</td><td>Gizmo</td><td>2</td>")


def test_a_page_with_columns_the_row_template_does_not_fit_gets_the_default_markup(served_app):
    _, url = served_app
    page = httpraw.get(f"{url}/tables/orders?limit=2&_cols=id,total").text
    assert _body_rows(page).startswith("<tr><td>1</td><td>233.14</td></tr>\n")
    assert parse_table(page).rows_sent == 2


def test_a_row_template_naming_a_missing_column_stops_start_up():
    env = _environment(
        {"tables/t.html": "{% block row %}<tr><td>{{ row.nope }}</td></tr>{% endblock %}"}
    )
    with pytest.raises(RowTemplateError, match=r"tables/t.html, line 1: row.nope"):
        RowTemplates(env).compile_known({"t": SyntheticTable(10, name="t")})


def test_a_filter_the_app_replaces_is_escaped_as_jinja_escapes_its_result():
    env = _environment(
        {"t.html": "{% block row %}<td>{{ row.name|money }}{{ row.id|upper }}</td>{% endblock %}"}
    )
    env.filters["money"] = lambda value: Markup("<b>%s</b>") % value  # Markup, not text
    env.filters["upper"] = lambda value: Markup("<i>&amp;</i>")
    render, path = compile_row_block(env, "t.html", row_block(env, "t.html"), COLUMNS)
    batch = [("1", "<Doe> & Sons", "2", "", "paid")]
    assert path == "batch"
    assert str(render(batch)) == render_row_by_row(env, "t.html", batch, COLUMNS)
    assert str(render(batch)) == "<td><b>&lt;Doe&gt; &amp; Sons</b><i>&amp;</i></td>"


def test_the_demo_row_templates_bind_only_to_the_demo_database(tmp_path, demo_db):
    # A team's own database with an "orders" table of other columns: it serves with the
    # default markup instead of refusing to start over the demo's template.
    own = tmp_path / "own.sqlite3"
    with sqlite3.connect(own) as conn:
        conn.execute("CREATE TABLE orders (ref TEXT, amount REAL)")
        conn.execute("INSERT INTO orders VALUES ('A-1', 2.5)")
    app = create_app({"db": str(own), "synthetic_rows": "0"})
    page = app.test_client().get("/tables/orders").get_data(as_text=True)
    assert "<tr><td>A-1</td><td>2.5</td></tr>" in page
    demo = create_app({"db": str(demo_db), "synthetic_rows": "0"})
    assert demo.extensions[ROW_TEMPLATES_KEY].page("orders") == "tables/demo/orders.html"
