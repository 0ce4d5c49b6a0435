"""The batch path of a row template: its ``row`` block as Python over a whole batch.

Used by ``rowtemplate.py`` when the row's markup does not depend on the values: the block is a
run of literal markup and outputs — cells (``row.total``, ``row["total"]``, ``row[4]``), constants,
filters, arithmetic, comparisons, ``a if test else b``, ``~`` — and ``{% if %}`` whose every
branch is plain markup (a class chosen by a value). Anything else raises ``Unfit`` and the
block takes Jinja's own per-row path.

Each output becomes the list of its values over the batch, escaped as Jinja would escape each:
a chain of ``map`` over the batch's columns where ``rowcolumns.py`` can write one, else a
comprehension over the rows (the per-row form below, ``expr``); a list used twice (a cell in a
``title`` and in the cell) is computed once. All lists then go by extended slices into a copy of
a cached list of the literals, and the batch is one join. The code is generated from the
template's nodes, never from values, and mirrors Jinja's: the same filter functions, the same
Python operators, ``escape`` for values Jinja would escape one by one. Whatever raises (a value
holding U+001F in a column that needs escaping, a filter that cannot take a value) sends that
batch per row, where Jinja itself gives the result or the error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from jinja2 import Environment, Undefined, nodes
from jinja2.nodes import EvalContext
from jinja2.runtime import markup_join
from jinja2.utils import _PassArg
from markupsafe import escape

from .rowcolumns import (
    ANY,
    COLUMN_SCOPE,
    INLINE,
    MARKUP,
    NUMBER,
    TEXT,
    ColumnForms,
    filter_kind,
    is_row,
)

__all__ = ["BatchCompiler", "Unfit"]

_COMPARE = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<="}
_COMPARE |= {"in": "in", "notin": "not in"}
_BINOPS = {nodes.Add: "+", nodes.Sub: "-", nodes.Mul: "*", nodes.Div: "/", nodes.FloorDiv: "//"}
_BINOPS |= {nodes.Mod: "%", nodes.Pow: "**"}


_CELL = re.compile(r"r\[[0-9]+\]")


class BatchCompiler(ColumnForms):
    """Compiles a row block to the batch path, or raises Unfit (see the module docstring)."""

    def __init__(self, env: Environment, name: str, index: dict[str, int]) -> None:
        self.env, self.name, self.index = env, name, index
        self.globals: dict[str, Any] = {"escape": escape, "markup_join": markup_join}
        self.eval_ctx = EvalContext(env, name)

    def expr(self, node: nodes.Expr, top: bool = False) -> tuple[str, str]:
        """Python source over ``r`` (the row's cells) and what kind of value it gives."""
        if isinstance(node, nodes.Const) and isinstance(node.value, (str, int, float, bool)):
            return repr(node.value), TEXT if isinstance(node.value, str) else NUMBER
        if isinstance(node, nodes.Getattr) and is_row(node.node):
            return f"r[{self.index[node.attr]}]", TEXT
        if isinstance(node, nodes.Getitem) and is_row(node.node):
            key = node.arg.value if isinstance(node.arg, nodes.Const) else None
            if isinstance(key, str):
                return f"r[{self.index[key]}]", TEXT
            if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(self.index):
                return f"r[{key}]", TEXT
            raise Unfit
        if isinstance(node, nodes.Filter) and node.node is not None:
            return self.filter(node)
        if isinstance(node, nodes.Compare):
            parts = [self.expr(node.expr)[0]]
            parts += [f"{_COMPARE[op.op]} {self.expr(op.expr)[0]}" for op in node.ops]
            return f"({' '.join(parts)})", NUMBER
        if isinstance(node, (nodes.And, nodes.Or)):
            op = "and" if isinstance(node, nodes.And) else "or"
            return f"({self.expr(node.left)[0]} {op} {self.expr(node.right)[0]})", ANY
        if isinstance(node, nodes.Not):
            return f"(not {self.expr(node.node)[0]})", NUMBER
        if type(node) in _BINOPS:
            (left, lk), (right, rk) = self.expr(node.left), self.expr(node.right)
            same = lk if lk == rk and lk in (TEXT, NUMBER) else ANY
            formatted = isinstance(node, nodes.Mod) and lk == TEXT and rk in (TEXT, NUMBER)
            kind = TEXT if formatted else same
            return f"({left} {_BINOPS[type(node)]} {right})", kind
        if isinstance(node, nodes.Neg):
            source, kind = self.expr(node.node)
            return f"(-{source})", NUMBER if kind == NUMBER else ANY
        if isinstance(node, nodes.Concat):
            parts = [self.expr(n) for n in node.nodes]
            if all(k in (TEXT, NUMBER) for _, k in parts):
                joined = ", ".join(s if k == TEXT else f"str({s})" for s, k in parts)
                return f'"".join(({joined},))', TEXT
            return f"markup_join(({', '.join(s for s, _ in parts)},))", ANY
        no_else = top and self.env.undefined is Undefined  # a missing else renders ""
        if isinstance(node, nodes.CondExpr) and (node.expr2 is not None or no_else):
            test = self.expr(node.test)[0]
            (yes, yk) = self.expr(node.expr1)
            (no, nk) = self.expr(node.expr2) if node.expr2 is not None else ("''", TEXT)
            return f"({yes} if {test} else {no})", yk if yk == nk else ANY
        raise Unfit

    def filter(self, node: nodes.Filter) -> tuple[str, str]:
        func = self.env.filters.get(node.name)
        if func is None or node.dyn_args is not None or node.dyn_kwargs is not None:
            raise Unfit
        given = [self.expr(a) for a in node.args] + [self.expr(kw.value) for kw in node.kwargs]
        numbers = all(kind == NUMBER for _, kind in given)
        args = [source for source, _ in given[: len(node.args)]]
        args += [
            f"{kw.key}={s}" for kw, (s, _) in zip(node.kwargs, given[len(node.args) :], strict=True)
        ]
        source, kind = self.expr(node.node)
        pass_arg = _PassArg.from_obj(func)
        if pass_arg is _PassArg.environment:
            self.globals["environment"] = self.env
            args.insert(0, "environment")
        elif pass_arg is _PassArg.eval_context:
            self.globals["eval_ctx"] = self.eval_ctx
            args.insert(0, "eval_ctx")
        elif pass_arg is not None:
            raise Unfit
        inline = INLINE.get(node.name)
        if inline and func is inline[0] and not given and kind == TEXT and _CELL.fullmatch(source):
            return inline[1].format(v=source), inline[2]
        key = f"f_{node.name}"
        self.globals[key] = func
        first = [args.pop(0)] if pass_arg else []
        call = f"{key}({', '.join([*first, source, *args])})"
        return call, filter_kind(node.name, func, kind, numbers)

    def literal(self, body: list[nodes.Node]) -> str:
        out = []
        for node in body:
            if not isinstance(node, nodes.Output):
                raise Unfit
            for child in node.nodes:
                if not isinstance(child, nodes.TemplateData):
                    raise Unfit
                out.append(child.data)
        return "".join(out)

    def choice(self, node: nodes.If) -> str:
        """``{% if %}`` whose every branch is plain markup, as one expression choosing it."""
        test = self.expr(node.test)[0]
        yes = repr(self.literal(node.body))
        if node.elif_:
            rest = nodes.If(node.elif_[0].test, node.elif_[0].body, node.elif_[1:], node.else_)
            return f"({yes} if {test} else {self.choice(rest)})"
        return f"({yes} if {test} else {self.literal(node.else_)!r})"

    def batch_path(self, block: nodes.Block) -> Callable[[Sequence[Sequence[str]]], str]:
        pieces: list[str] = [""]  # literal markup; the slots go between them
        slots: list[tuple[nodes.Node, str, str]] = []  # (node, per-row source, kind)
        for node in block.body:
            children = node.nodes if isinstance(node, nodes.Output) else [node]
            for child in children:
                if isinstance(child, nodes.TemplateData):
                    pieces[-1] += child.data
                    continue
                slots.append(
                    (child, self.choice(child), MARKUP)
                    if isinstance(child, nodes.If)
                    else (child, *self.expr(child, top=True))
                    if isinstance(child, nodes.Expr)
                    else _unfit()
                )
                pieces.append("")
        return self.generate(pieces, slots)

    def generate(
        self, pieces: list[str], slots: list[tuple[nodes.Node, str, str]]
    ) -> Callable[[Sequence[Sequence[str]]], str]:
        lines = ["def render(batch):", "    n = len(batch)"]
        names: dict[str, str] = {}  # a list's source -> its name: a column used twice, once
        order = []  # each slot's list, by name
        for node, source, kind in slots:
            values = self.values(node, source, kind)
            if values not in names:
                names[values] = f"s{len(names)}"
                lines.append(f"    {names[values]} = {values}")
            order.append(names[values])
        if any("cols[" in line for line in lines):
            # The cells a column at a time, in C; a row too short raises IndexError (per row).
            lines.insert(2, "    cols = list(zip(*batch))")
        k = len(slots)
        # One list of every piece of the batch, literals already in place (a copy of a cached
        # list per batch size); the values go in by extended slices, then one join.
        lines.append("    out = _literals(n)")
        for i, name in enumerate(order):
            lines.append(f"    out[{2 * i + 1}::{2 * k + 1}] = {name}")
        lines.append("    return ''.join(out)")
        literals: dict[int, list[str]] = {}

        def batch_literals(n: int) -> list[str]:
            found = literals.get(n)
            if found is None:
                found = [""] * (n * (2 * k + 1))
                for i, piece in enumerate(pieces):
                    found[2 * i :: 2 * k + 1] = [piece] * n
                if len(literals) < 16:  # the batch sizes a source uses: a few
                    literals[n] = found
            return found.copy()

        scope = {**self.globals, **COLUMN_SCOPE}
        scope["_literals"] = batch_literals
        source = "\n".join(lines)
        exec(compile(source, f"<row template {self.name}>", "exec"), scope)  # from nodes only
        scope["render"].source = source  # what the template compiled to, for a reader
        return scope["render"]


class Unfit(Exception):
    """The block is a valid row template, but only Jinja's per-row path renders it."""


def _unfit() -> tuple[str, str]:
    raise Unfit
