"""A row template's values a whole column at a time: what the batch path computes, in C.

``rowcompile.py`` turns each output of a row block into the list of its values over a batch.
This module writes that list as a chain of ``map`` over the batch's columns (``zip(*batch)``)
wherever the output is a cell, a filter of one, a comparison, arithmetic, ``not`` or ``-``, so
no line of Python runs per row: ``row.id|int - 1`` becomes
``map(str, map(sub, map(int, cols[0]), repeat(1)))``, and ``{% if row.status == "x" %}`` a
lookup of the comparison's ``True``/``False`` in a pair of literals. An output it cannot write
so (``~``, ``a if t else b``, ``and``/``or``, ``{% elif %}``, keyword arguments) is a
comprehension over the rows, as before. Operands are computed for every row; Jinja computes
``b`` of ``a and b`` only when needed, so such forms are not taken here, and any exception sends
the batch per row, where Jinja's own result or error comes.

It also decides what a value is known to be, which decides how it is escaped:

- text: a ``str`` (a cell, a string constant, a text filter of text): ``escape_column``;
- number: ``int``, ``float`` or ``bool`` (``|int``, arithmetic on numbers, comparisons), whose
  ``str()`` has nothing to escape;
- safe: a ``str`` with nothing to escape (``|money`` of a cell: digits, ``,``, ``.``, ``-``);
- any: unknown (a filter this module does not know may return Markup): escaped on its own,
  exactly as Jinja escapes an output;
- markup: the template's own literal, chosen by ``{% if %}``: never escaped.

Text is escaped a column at a time: most columns hold none of ``& < > " '`` (five searches of
one joined text show it) and go out as the very objects the source made.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from typing import Any

from jinja2 import Environment, nodes
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.filters import do_int
from jinja2.nodes import EvalContext
from jinja2.utils import _PassArg
from markupsafe import escape

from .markup import has_markup_characters
from .rowfilters import FILTERS, TEXT_FILTERS, money, money_column

__all__ = [
    "ANY",
    "COLUMN_SCOPE",
    "INLINE",
    "MARKUP",
    "NUMBER",
    "SAFE",
    "TEXT",
    "ColumnForms",
    "NotColumnar",
    "escape_column",
    "filter_kind",
    "is_row",
]

_SEP = "\x1f"

TEXT, NUMBER, SAFE, ANY, MARKUP = "text", "number", "safe", "any", "markup"
_NUMBER_FILTERS = frozenset({"int", "float", "abs", "round", "length", "count", "wordcount"})
_STR_FILTERS = frozenset({"upper", "lower", "title", "capitalize", "trim", "string", "center"})
_KNOWN = {**JINJA_FILTERS, **FILTERS}  # the filters whose kind of result is known


# The common case of a filter on a cell, written inline: (the filter it stands for, the source,
# the kind). Any cell it cannot take raises, and that batch goes per row, where the filter
# itself runs: do_int tries int(text) first; money("") and money(None) are "".
INLINE = {
    "int": (do_int, "int({v})", NUMBER),
    "money": (money, "(format(float({v}), ',.2f') if {v} else '')", SAFE),
}


class NotColumnar(Exception):
    """An output the batch path writes per row (a comprehension), not as a column."""


def escape_column(values: Sequence[str]) -> Sequence[str]:
    """Every value escaped as markupsafe escapes it (``& < > " '``), a column in a few C calls.

    Most columns hold none of the five characters: one join and five searches show it, and the
    values go out as they are. Otherwise the column is escaped as one text and split again at
    U+001F; a value holding U+001F itself cannot be split back, so that raises (the batch then
    goes per row).
    """
    text = _SEP.join(values)
    if has_markup_characters(text):
        parts = str(escape(text)).split(_SEP)
        if len(parts) != len(values):
            raise ValueError("a separator in a value")
        return parts
    return values


_OPERATORS = {"eq": "eq", "ne": "ne", "gt": "gt", "gteq": "ge", "lt": "lt", "lteq": "le"}
_BINARY = {nodes.Add: "add", nodes.Sub: "sub", nodes.Mul: "mul", nodes.Div: "truediv"}
_BINARY |= {nodes.FloorDiv: "floordiv", nodes.Mod: "mod", nodes.Pow: "pow"}
# What generated code may call, besides the filters: C functions, so a column's values are
# computed without a line of Python per row.
_CALLED = ["contains", "not_", "neg", "truth", "and_", "or_"]
COLUMN_SCOPE: dict[str, Any] = {
    f"_op_{name}": getattr(operator, name)
    for name in [*_OPERATORS.values(), *_BINARY.values(), *_CALLED]
}
COLUMN_SCOPE |= {"_map": map, "_repeat": itertools.repeat, "_escape": escape}
COLUMN_SCOPE |= {"_escape_column": escape_column, "_money_column": money_column}


class ColumnForms:
    """The column forms of ``BatchCompiler`` (rowcompile.py), which gives ``expr``,
    ``literal``, ``env``, ``globals`` and ``eval_ctx``."""

    env: Environment
    globals: dict[str, Any]
    eval_ctx: EvalContext
    expr: Callable[..., tuple[str, str]]
    literal: Callable[[list[nodes.Node]], str]

    def column(self, node: nodes.Expr) -> tuple[str, str, bool]:
        """Python source of ``node`` over the whole batch, a chain of ``map`` over its columns.

        Gives (source, kind, scalar): an iterable of one value per row, or a constant when
        ``scalar``. Raises NotColumnar for what only the per-row form writes (then that output
        alone is a comprehension over the rows). Every operand is computed for every row, where
        Jinja computes ``a and b``'s ``b`` only when needed: such forms are not taken here, and
        any exception still sends the batch per row, where Jinja's own result (or error) comes.
        """
        if isinstance(node, nodes.Const) and isinstance(node.value, (str, int, float, bool)):
            return repr(node.value), TEXT if isinstance(node.value, str) else NUMBER, True
        if isinstance(node, (nodes.Getattr, nodes.Getitem)) and is_row(node.node):
            return f"cols[{self.expr(node)[0][2:-1]}]", TEXT, False
        if isinstance(node, nodes.Filter) and node.node is not None:
            return self.column_filter(node)
        if isinstance(node, nodes.Compare) and len(node.ops) == 1:
            op = node.ops[0].op
            (left, _, ls), (right, _, rs) = self.column(node.expr), self.column(node.ops[0].expr)
            if ls and rs:
                raise NotColumnar
            left, right = _every(left, ls), _every(right, rs)
            if op in ("in", "notin"):  # a in b is contains(b, a)
                source = f"_map(_op_contains, {right}, {left})"
                return source if op == "in" else f"_map(_op_not_, {source})", NUMBER, False
            return f"_map(_op_{_OPERATORS[op]}, {left}, {right})", NUMBER, False
        if isinstance(node, nodes.Not):
            return f"_map(_op_not_, {self.column_of_rows(node.node)})", NUMBER, False
        if type(node) in _BINARY:
            (left, _, ls), (right, _, rs) = self.column(node.left), self.column(node.right)
            if ls and rs:
                raise NotColumnar
            kind = self.expr(node)[1]
            return (
                f"_map(_op_{_BINARY[type(node)]}, {_every(left, ls)}, {_every(right, rs)})",
                kind,
                False,
            )
        if isinstance(node, nodes.Neg):
            source, kind = self.expr(node)
            return f"_map(_op_neg, {self.column_of_rows(node.node)})", kind, False
        raise NotColumnar

    def column_of_rows(self, node: nodes.Expr) -> str:
        source, _, scalar = self.column(node)
        if scalar:
            raise NotColumnar
        return source

    def column_filter(self, node: nodes.Filter) -> tuple[str, str, bool]:
        func = self.env.filters.get(node.name)
        if func is None or node.dyn_args is not None or node.dyn_kwargs is not None or node.kwargs:
            raise NotColumnar
        given = [self.column(a) for a in node.args]
        if not all(scalar for _, _, scalar in given):
            raise NotColumnar
        source, kind, scalar = self.column(node.node)
        if scalar:
            raise NotColumnar
        inline = INLINE.get(node.name)
        if inline and func is inline[0] and not given and source.startswith("cols["):
            if node.name == "money":  # a cell: what the per-row form writes inline
                return f"_money_column({source})", SAFE, False
            return f"_map(int, {source})", NUMBER, False
        pass_arg = _PassArg.from_obj(func)
        first = ""
        if pass_arg is _PassArg.environment:
            self.globals["environment"] = self.env
            first = "_repeat(environment), "
        elif pass_arg is _PassArg.eval_context:
            self.globals["eval_ctx"] = self.eval_ctx
            first = "_repeat(eval_ctx), "
        elif pass_arg is not None:
            raise NotColumnar
        key = f"f_{node.name}"
        self.globals[key] = func
        args = "".join(f", _repeat({a})" for a, _, _ in given)
        numbers = all(k == NUMBER for _, k, _ in given)
        return (
            f"_map({key}, {first}{source}{args})",
            filter_kind(node.name, func, kind, numbers),
            False,
        )

    def column_choice(self, node: nodes.If) -> str:
        """``{% if test %}markup{% else %}markup{% endif %}`` for a whole batch, or NotColumnar."""
        if node.elif_:
            raise NotColumnar
        branches = (self.literal(node.else_), self.literal(node.body))
        return f"_map({branches!r}.__getitem__, {self.column_test(node.test)})"

    def column_test(self, node: nodes.Expr) -> str:
        """A test's truth over the batch: ``True`` or ``False`` per row, as ``if`` would see it.

        ``a or b`` and ``a and b`` are the ``|`` and ``&`` of both sides' truth (both computed,
        see the module docstring); a comparison of text or numbers is already a bool.
        """
        if isinstance(node, (nodes.And, nodes.Or)):
            op = "and_" if isinstance(node, nodes.And) else "or_"
            return f"_map(_op_{op}, {self.column_test(node.left)}, {self.column_test(node.right)})"
        test = self.column_of_rows(node)
        if isinstance(node, nodes.Not) or (
            isinstance(node, nodes.Compare)
            and all(self.expr(n)[1] in (TEXT, NUMBER, SAFE) for n in (node.expr, node.ops[0].expr))
        ):
            return test
        return f"_map(_op_truth, {test})"

    def values(self, node: nodes.Node, source: str, kind: str) -> str:
        """The source of a slot's list of n values, ready to join: escaped where needed."""
        try:
            if kind == MARKUP:
                column = self.column_choice(node)  # type: ignore[arg-type]
            else:
                column, _, scalar = self.column(node)  # type: ignore[arg-type]
                if scalar:
                    raise NotColumnar
        except NotColumnar:  # this output alone, row by row
            column = f"[{source} for r in batch]"
        if kind == NUMBER:
            return f"list(_map(str, {column}))"
        if kind == ANY:
            return f"list(_map(_escape, {column}))"
        listed = (
            column if column.startswith(("cols[", "[", "_money_column(")) else f"list({column})"
        )
        return f"_escape_column({listed})" if kind == TEXT else listed


def _every(source: str, scalar: bool) -> str:
    return f"_repeat({source})" if scalar else source


def filter_kind(name: str, func: Callable, kind: str, numbers: bool) -> str:
    """What a filter's result is known to be, from the filter and what it was given."""
    known = func is _KNOWN.get(name)  # not replaced by one of the app's own
    if known and name in TEXT_FILTERS | _STR_FILTERS and kind in (TEXT, NUMBER):
        return TEXT
    return NUMBER if known and name in _NUMBER_FILTERS and numbers else ANY


def is_row(node: nodes.Node | None) -> bool:
    """Whether ``node`` is the name ``row``, the one name a row block's cells come from."""
    return isinstance(node, nodes.Name) and node.name == "row"
