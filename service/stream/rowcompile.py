"""The batch path of a row template: its ``row`` block as Python over a batch, escaped once.

Used by ``rowtemplate.py`` when the row's markup does not depend on the values: the block is a
run of literal markup and outputs — cells (``row.total``, ``row["total"]``, ``row[4]``), constants,
filters, arithmetic, comparisons, ``a if test else b``, ``~`` — and ``{% if %}`` whose every
branch is plain markup (a class chosen by a value). Anything else raises ``Unfit`` and the
block takes Jinja's own per-row path.

Each output becomes a list of the batch's values (one comprehension per output, or a column of
``zip(*batch)`` for a plain cell); the text ones
are joined with U+001F, escaped in one call of markupsafe and split again; all values then go by
extended slices into a copy of a cached list of the literals, and the batch is one join. The
code is generated from the template's nodes, never from values, and mirrors Jinja's: the same
filter functions, the same Python operators, ``escape`` for values Jinja would escape one by
one. What a value is known to be decides how it is escaped:

- text: a ``str`` (a cell, a string constant, a text filter of text): escaped with the batch;
- number: ``int``, ``float`` or ``bool`` (``|int``, arithmetic on numbers, comparisons), whose
  ``str()`` has nothing to escape;
- safe: a ``str`` with nothing to escape (``|money`` of a cell, written inline: digits, ``,``,
  ``.``, ``-``; an output that is just that goes a column at a time, ``money_column``);
- any: unknown (a filter this module does not know may return Markup): escaped on its own,
  exactly as Jinja escapes an output;
- markup: the template's own literal, chosen by ``{% if %}``: never escaped.

A batch whose text holds U+001F itself cannot be split back; the renderer raises and the caller
renders that batch per row.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any

from jinja2 import Environment, Undefined, nodes
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.filters import do_int
from jinja2.nodes import EvalContext
from jinja2.runtime import markup_join
from jinja2.utils import _PassArg
from markupsafe import escape

from .rowfilters import FILTERS, TEXT_FILTERS, money, money_column

__all__ = ["BatchCompiler", "Unfit"]

_SEP = "\x1f"
_NUMBER_FILTERS = frozenset({"int", "float", "abs", "round", "length", "count", "wordcount"})
_STR_FILTERS = frozenset({"upper", "lower", "title", "capitalize", "trim", "string", "center"})
_COMPARE = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<="}
_COMPARE |= {"in": "in", "notin": "not in"}
_BINOPS = {nodes.Add: "+", nodes.Sub: "-", nodes.Mul: "*", nodes.Div: "/", nodes.FloorDiv: "//"}
_BINOPS |= {nodes.Mod: "%", nodes.Pow: "**"}
TEXT, NUMBER, SAFE, ANY, MARKUP = "text", "number", "safe", "any", "markup"


# The common case of a filter on a cell, written inline: (the filter it stands for, the source,
# the kind). Any cell it cannot take raises, and that batch goes per row, where the filter
# itself runs: do_int tries int(text) first; money("") and money(None) are "".
_INLINE = {
    "int": (do_int, "int({v})", NUMBER),
    "money": (money, "(format(float({v}), ',.2f') if {v} else '')", SAFE),
}
_CELL = re.compile(r"r\[[0-9]+\]")
_KNOWN = {**JINJA_FILTERS, **FILTERS}  # the filters whose kind of result is known


class BatchCompiler:
    """Compiles a row block to the batch path, or raises Unfit (see the module docstring)."""

    def __init__(self, env: Environment, name: str, index: dict[str, int]) -> None:
        self.env, self.name, self.index = env, name, index
        self.globals: dict[str, Any] = {"escape": escape, "markup_join": markup_join}
        self.eval_ctx = EvalContext(env, name)
        self.columnwise: dict[str, str] = {}  # a value's source -> its column's, in one call

    def expr(self, node: nodes.Expr, top: bool = False) -> tuple[str, str]:
        """Python source over ``r`` (the row's cells) and what kind of value it gives."""
        if isinstance(node, nodes.Const) and isinstance(node.value, (str, int, float, bool)):
            return repr(node.value), TEXT if isinstance(node.value, str) else NUMBER
        if isinstance(node, nodes.Getattr) and _is_row(node.node):
            return f"r[{self.index[node.attr]}]", TEXT
        if isinstance(node, nodes.Getitem) and _is_row(node.node):
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
        inline = _INLINE.get(node.name)
        if inline and func is inline[0] and not given and kind == TEXT and _CELL.fullmatch(source):
            written = inline[1].format(v=source)
            if node.name == "money":  # an output of just this: the whole column at once
                self.columnwise[written] = f"_money_column(cols[{source[2:-1]}])"
            return written, inline[2]
        key = f"f_{node.name}"
        self.globals[key] = func
        first = [args.pop(0)] if pass_arg else []
        call = f"{key}({', '.join([*first, source, *args])})"
        known = func is _KNOWN.get(node.name)  # not replaced by one of the app's own
        if known and node.name in TEXT_FILTERS | _STR_FILTERS and kind in (TEXT, NUMBER):
            return call, TEXT
        return call, NUMBER if known and node.name in _NUMBER_FILTERS and numbers else ANY

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
        slots: list[tuple[str, str]] = []
        for node in block.body:
            children = node.nodes if isinstance(node, nodes.Output) else [node]
            for child in children:
                if isinstance(child, nodes.TemplateData):
                    pieces[-1] += child.data
                    continue
                slots.append(
                    (self.choice(child), MARKUP)
                    if isinstance(child, nodes.If)
                    else self.expr(child, top=True)
                    if isinstance(child, nodes.Expr)
                    else _unfit()
                )
                pieces.append("")
        if _SEP in "".join(pieces):
            raise Unfit
        return self.generate(pieces, slots)

    def generate(
        self, pieces: list[str], slots: list[tuple[str, str]]
    ) -> Callable[[Sequence[Sequence[str]]], str]:
        lines = ["def render(batch, _chain=_chain, _escape=_escape):", "    n = len(batch)"]
        if any(_CELL.fullmatch(source) or source in self.columnwise for source, _ in slots):
            # The cells a column at a time, in C; a row too short raises IndexError (per row).
            lines.append("    cols = list(zip(*batch))")
        text, order = [], []
        for i, (source, kind) in enumerate(slots):
            if kind == NUMBER:
                source = f"str({source})"
            elif kind == ANY:
                source = f"_escape({source})"
            if _CELL.fullmatch(source):
                lines.append(f"    s{i} = cols[{source[2:-1]}]")
            elif source in self.columnwise:
                lines.append(f"    s{i} = {self.columnwise[source]}")
            else:
                lines.append(f"    s{i} = [{source} for r in batch]")
            if kind == TEXT:
                order.append(f"p[{len(text)} * n:{len(text) + 1} * n]")
                text.append(f"s{i}")
            else:
                order.append(f"s{i}")
        k = len(slots)
        if text:
            lines += [
                f"    joined = _SEP.join(_chain({', '.join(text)}))",
                f"    if joined.count(_SEP) != {len(text)} * n - 1:",
                "        raise ValueError('a separator in a value')",
                "    p = str.split(_escape(joined), _SEP)",
            ]
        # One list of every piece of the batch, literals already in place (a copy of a cached
        # list per batch size); the values go in by extended slices, then one join.
        lines.append("    out = _literals(n)")
        for i, source in enumerate(order):
            lines.append(f"    out[{2 * i + 1}::{2 * k + 1}] = {source}")
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

        scope = {**self.globals, "_chain": itertools.chain, "_escape": escape, "_SEP": _SEP}
        scope["_money_column"] = money_column
        scope["_literals"] = batch_literals
        source = "\n".join(lines)
        exec(compile(source, f"<row template {self.name}>", "exec"), scope)  # from nodes only
        scope["render"].source = source  # what the template compiled to, for a reader
        return scope["render"]


class Unfit(Exception):
    """The block is a valid row template, but only Jinja's per-row path renders it."""


def _unfit() -> tuple[str, str]:
    raise Unfit


def _is_row(node: nodes.Node | None) -> bool:
    return isinstance(node, nodes.Name) and node.name == "row"
