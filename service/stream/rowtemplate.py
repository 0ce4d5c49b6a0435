"""A table's own row markup, written in Jinja, rendered a batch at a time.

A table may have ``templates/tables/<table>.html``: it extends ``table.html`` and writes one row
as ordinary Jinja in ``{% block row %}`` (the contract is at the top of
``templates/tables/demo/orders.html`` and in docs/row-templates.md). Rendering that block row by row
costs Jinja a context and an escape per output per row; ``RowTemplates`` compiles it once per
table and column list (per process) into a function of a batch whose output is byte-identical
to that row-by-row rendering (``render_row_by_row`` below is the definition the property tests
hold it to). Two paths:

- the **batch path** (``rowcompile.py``), when the row's markup does not depend on its values:
  Python generated from the block, escaping a whole batch at once;
- the **per-row path**, for everything else (``{% for cell in row %}``, ``{% set %}``, outputs
  inside ``{% if %}``, filters that need the context): the block's own nodes in a ``for`` loop
  over the batch, compiled by Jinja itself — one context per batch instead of one per row.
  A batch the batch path cannot take (a value holding U+001F, a filter that raises) goes this
  way too, so the result, or the error, is always Jinja's.

Refused when compiled, with the template and line named: a column the table does not have,
``|safe`` on anything made from a cell (its text would go out unescaped), ``{% autoescape %}``,
``loop`` outside a loop of the block's own, and blocks inside the row block. A table without its
own template, or whose template has no ``row`` block, keeps ``rows_html`` (``markup.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from jinja2 import Environment, nodes
from jinja2.nodes import EvalContext
from markupsafe import Markup

from ..sources.base import SourceError, Table
from .markup import rows_html
from .rowcolumns import is_row
from .rowcompile import BatchCompiler, Unfit

__all__ = [
    "BatchRenderer",
    "RowTemplateError",
    "RowTemplates",
    "RowView",
    "compile_row_block",
    "render_row_by_row",
    "row_block",
]

BatchRenderer = Callable[[Sequence[Sequence[str]]], Markup]


class RowTemplateError(ValueError):
    """A row template the service refuses; the message names the template, line and reason."""


class RowView:
    """One row as a template sees it: ``row.status``, ``row["status"]``, ``row[6]``, iterable."""

    __slots__ = ("_cells", "_index")

    def __init__(self, cells: Sequence[str], index: Mapping[str, int]) -> None:
        self._cells = cells
        self._index = index

    def __getattr__(self, name: str) -> str:
        try:
            return self._cells[self._index[name]]
        except (KeyError, IndexError):
            raise AttributeError(name) from None

    def __getitem__(self, key: int | str) -> str:
        return self._cells[self._index[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cells)

    def __len__(self) -> int:
        return len(self._cells)


def row_block(env: Environment, name: str) -> nodes.Block | None:
    """The ``{% block row %}`` of template ``name``, parsed, or None when it has none."""
    source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    for block in env.parse(source, name, filename).find_all(nodes.Block):
        if block.name == "row":
            return block
    return None


def render_row_by_row(
    env: Environment, name: str, batch: Sequence[Sequence[str]], columns: Sequence[str]
) -> str:
    """The row block of template ``name`` rendered by Jinja once per row: the definition."""
    template = env.get_template(name)
    block = template.blocks["row"]
    index = {column: i for i, column in enumerate(columns)}
    names = list(columns)
    return "".join(
        "".join(block(template.new_context({"row": RowView(row, index), "columns": names})))
        for row in batch
    )


def compile_row_block(
    env: Environment, name: str, block: nodes.Block, columns: Sequence[str]
) -> tuple[BatchRenderer, str]:
    """The batch renderer of ``block`` (of template ``name``) and its path, "batch" or "per-row".

    Raises RowTemplateError for a template the service refuses (see the module docstring).
    """
    index = {column: i for i, column in enumerate(columns)}
    _check(name, block, index)
    per_row = _per_row(env, name, block, index)
    if env.finalize is not None or not EvalContext(env, name).autoescape:
        return per_row, "per-row"
    try:
        fast = BatchCompiler(env, name, index).batch_path(block)
    except Unfit:
        return per_row, "per-row"

    def render_rows(batch: Sequence[Sequence[str]]) -> Markup:
        if not batch:
            return Markup("")
        try:
            return Markup(fast(batch))
        except Exception:  # Jinja's per-row path then gives the exact result, or the error
            return per_row(batch)

    return render_rows, "batch"


class RowTemplates:
    """Which page template each table uses, and its batch renderer, compiled once and kept."""

    def __init__(self, env: Environment, catalog: Mapping[str, Table] | None = None) -> None:
        self.env = env
        names = env.list_templates()
        # tables/<table>.html is a team's own: it binds to any table of that name. The demo's
        # rows (tables/demo/<table>.html) bind only to tables of the demo database, so a
        # user's own "orders" never meets a template written for other columns.
        demo = {
            name[len("tables/demo/") : -len(".html")]: name
            for name in names
            if name.startswith("tables/demo/") and name.endswith(".html") and name.count("/") == 2
        }
        self._own = {
            table: name
            for table, name in demo.items()
            if catalog is not None and getattr(catalog.get(table), "demo", False)
        }
        self._own.update(
            (name[len("tables/") : -len(".html")], name)
            for name in names
            if name.startswith("tables/") and name.endswith(".html") and name.count("/") == 1
        )
        self._blocks = {table: row_block(env, name) for table, name in self._own.items()}
        self._compiled: dict[tuple[str, tuple[str, ...]], tuple[BatchRenderer, str]] = {}
        self._lock = threading.Lock()

    def compile_known(self, catalog: Mapping[str, Table]) -> None:
        """Compile the row template of every table that has one, so a broken one stops start-up.

        A table whose columns cannot be read now is left to its first request.
        """
        for table, name in self._own.items():
            self.env.get_template(name)
            source = catalog.get(table)
            if source is None or self._blocks[table] is None:
                continue
            try:
                columns = source.columns()
            except SourceError:
                continue
            self.compiled(table, columns, strict=True)

    def page(self, table: str) -> str:
        """The template that renders the page of ``table``."""
        return self._own.get(table, "table.html")

    def renderer(self, table: str, columns: Sequence[str]) -> BatchRenderer:
        """The batch renderer of ``table``'s rows; ``rows_html`` when it has no row block."""
        return self.compiled(table, columns)[0]

    def compiled(
        self, table: str, columns: Sequence[str], strict: bool = False
    ) -> tuple[BatchRenderer, str]:
        """The renderer and its path: "batch", "per-row", or "default" (``rows_html``).

        A page whose columns the template does not fit (``?_cols=``, columns hidden from the
        reader, a schema changed under the service) gets the default markup, path
        "default: <why>"; ``strict`` raises RowTemplateError instead (start-up does).
        """
        block = self._blocks.get(table)
        if block is None:
            return rows_html, "default"
        key = (table, tuple(columns))
        found = self._compiled.get(key)
        if found is None:
            with self._lock:  # compiled once even when the first requests come together
                found = self._compiled.get(key)
                if found is None:
                    try:
                        found = compile_row_block(self.env, self._own[table], block, columns)
                    except RowTemplateError as exc:
                        if strict:
                            raise
                        found = (rows_html, f"default: {exc}")
                    self._compiled[key] = found
        return found


def _check(name: str, block: nodes.Block, index: Mapping[str, int]) -> None:
    """Refuse what no path may render; both paths then agree on everything else."""

    def refuse(node: nodes.Node, why: str) -> RowTemplateError:
        return RowTemplateError(f"{name}, line {node.lineno}: {why}")

    outside = _loop_outside_loops(block)
    if outside is not None:
        raise refuse(outside, "`loop` is not defined in a row template (one row, no loop)")
    for node in block.find_all((nodes.Filter, nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Filter) and node.name == "safe" and _uses_row(node.node):
            raise refuse(node, "|safe on a cell's value would send it out unescaped; refused")
        if not is_row(getattr(node, "node", None)):
            continue
        column = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            column = node.arg.value if isinstance(node.arg.value, str) else None
        if column is not None and column not in index:
            known = ", ".join(index)
            raise refuse(node, f"row.{column}: the table has no column {column!r} ({known})")
        if isinstance(node, nodes.Getattr) and hasattr(RowView, column):
            raise refuse(node, f"row.{column} is not a cell; write row[{column!r}]")
    for node in block.find_all((nodes.EvalContextModifier, nodes.Block)):
        if isinstance(node, nodes.EvalContextModifier):
            raise refuse(node, "{% autoescape %} is not allowed in a row template")
        raise refuse(node, "a row block may not hold another block")


def _per_row(
    env: Environment, name: str, block: nodes.Block, index: dict[str, int]
) -> BatchRenderer:
    """The block inside ``{% for row in _rows %}``, compiled by Jinja: one context per batch."""
    loop = nodes.For(
        nodes.Name("row", "store", lineno=1),
        nodes.Name("_rows", "load", lineno=1),
        block.body,
        [],
        None,
        False,
        lineno=1,
    )
    tree = nodes.Template([loop], lineno=1)
    tree.set_environment(env)
    code = env.compile(tree, name)
    template = env.template_class.from_code(env, code, env.make_globals(None), None)
    render, new_context, names = template.root_render_func, template.new_context, list(index)

    def render_rows(batch: Sequence[Sequence[str]]) -> Markup:
        views = [RowView(row, index) for row in batch]
        return Markup("".join(render(new_context({"_rows": views, "columns": names}))))

    return render_rows


def _loop_outside_loops(node: nodes.Node) -> nodes.Name | None:
    """A ``loop`` name not inside a ``{% for %}`` of the row block itself, if there is one."""
    for child in node.iter_child_nodes(exclude=("body",) if isinstance(node, nodes.For) else ()):
        if isinstance(child, nodes.Name) and child.name == "loop":
            return child
        found = _loop_outside_loops(child)
        if found is not None:
            return found
    return None


def _uses_row(node: nodes.Node) -> bool:
    return is_row(node) or any(n.name == "row" for n in node.find_all(nodes.Name))
