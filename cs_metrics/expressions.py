"""A small, safe expression language for alert rules that staff write in a form.

Pure module: standard library only, no ``eval``/``compile``. A hand-written tokenizer and
recursive-descent parser build a tree of frozen dataclasses; :func:`compile_value` turns it
into closures, which :func:`evaluate` and :func:`compile_rule` call.

Grammar (keywords are case-insensitive, metric names are not)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := NUMBER | STRING | "true" | "false" | NAME
                | ("abs" | "min" | "max") "(" expr ("," expr)* ")" | "(" expr ")"

Numbers are decimal (``500000``, ``500_000``, ``3.5``); strings are single- or double-quoted
without escapes. Comparisons do not chain (write ``1 < x and x < 5``).

Types
    When ``known_metrics`` maps names to a type (``"number"``, ``"text"``, ``"bool"``), the
    parser checks types, so ``nps_category > 3`` is refused instead of never firing. With a
    plain collection of names, types are checked only among literals.

Missing data never fires
    A metric whose value is ``None`` is *unknown*, and unknown spreads like SQL's NULL
    (three-valued logic): a comparison or arithmetic with an unknown is unknown, ``not``
    unknown is unknown, ``false and unknown`` is false, ``true or unknown`` is true. An
    expression whose result is unknown does not fire. Division by zero is unknown too. So
    ``not (health_score < 50)`` does not fire for an account without a score.

Limits
    ``MAX_LENGTH`` characters, ``MAX_TOKENS`` tokens and ``MAX_DEPTH`` levels of nesting, so a
    pasted megabyte or ``((((...))))`` is refused with an error, never a crash.

Errors
    Every problem is an :class:`ExpressionError` with a stable ``code``, the 0-based
    ``position`` in the text and ``params`` (say the unknown ``name``); its ``message`` is
    English, and callers that show it translate by ``code`` (the UI owns the wording).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_TOKENS",
    "BinOp",
    "BoolOp",
    "Call",
    "Compare",
    "Expr",
    "ExpressionError",
    "Literal",
    "Metric",
    "Neg",
    "Not",
    "compile_rule",
    "compile_value",
    "evaluate",
    "evaluate_value",
    "metric_names",
    "parse",
]

MAX_LENGTH = 1000
MAX_TOKENS = 300
MAX_DEPTH = 32

NUMBER = "number"
TEXT = "text"
BOOL = "bool"
ANY = "any"
TYPES = frozenset({NUMBER, TEXT, BOOL})

Value = float | str | bool | None


class ExpressionError(ValueError):
    """A rule expression that does not parse, names an unknown metric or mixes types."""

    def __init__(self, code: str, message: str, position: int, **params: Any) -> None:
        super().__init__(f"{message} (at character {position + 1})")
        self.code = code
        self.message = message
        self.position = position
        self.params = params


# --------------------------------------------------------------------------------------------
# Tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    position: int = field(compare=False)

    @property
    def type(self) -> str:  # pragma: no cover - every node overrides it
        return ANY


@dataclass(frozen=True)
class Literal(Expr):
    value: float | str | bool

    @property
    def type(self) -> str:
        if isinstance(self.value, bool):
            return BOOL
        return TEXT if isinstance(self.value, str) else NUMBER


@dataclass(frozen=True)
class Metric(Expr):
    name: str
    kind: str = ANY

    @property
    def type(self) -> str:
        return self.kind


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr

    @property
    def type(self) -> str:
        return NUMBER


@dataclass(frozen=True)
class BinOp(Expr):
    op: str  # + - * /
    left: Expr
    right: Expr

    @property
    def type(self) -> str:
        return NUMBER


@dataclass(frozen=True)
class Call(Expr):
    function: str  # abs min max
    args: tuple[Expr, ...]

    @property
    def type(self) -> str:
        return NUMBER


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # < <= > >= == !=
    left: Expr
    right: Expr

    @property
    def type(self) -> str:
        return BOOL


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr

    @property
    def type(self) -> str:
        return BOOL


@dataclass(frozen=True)
class BoolOp(Expr):
    op: str  # and or
    operands: tuple[Expr, ...]

    @property
    def type(self) -> str:
        return BOOL


def metric_names(expr: Expr) -> set[str]:
    """The metrics an expression reads (to record what a firing saw)."""
    found: set[str] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Metric):
            found.add(node.name)
        elif isinstance(node, Neg | Not):
            stack.append(node.operand)
        elif isinstance(node, BinOp | Compare):
            stack.extend((node.left, node.right))
        elif isinstance(node, Call):
            stack.extend(node.args)
        elif isinstance(node, BoolOp):
            stack.extend(node.operands)
    return found


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # number string name op lparen rparen comma end
    text: str
    position: int


_NUMBER = re.compile(r"\d+(?:_\d+)*(?:\.\d+(?:_\d+)*)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = ("<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/")
_MISTAKES = {"=": "==", "&&": "and", "||": "or", "!": "not", "<>": "!="}
_KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
FUNCTIONS = {"abs": (1, 1), "min": (2, 20), "max": (2, 20)}


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if len(out) >= MAX_TOKENS:
            raise ExpressionError(
                "too_long", f"the expression has more than {MAX_TOKENS} parts", i,
                max=MAX_TOKENS,
            )  # fmt: skip
        if ch.isascii() and ch.isdigit():
            m = _NUMBER.match(text, i)
            assert m is not None
            end = m.end()
            if end < n and (text[end].isalnum() or text[end] in "_."):
                raise ExpressionError("bad_number", "this is not a number", i)
            out.append(_Token("number", m.group(), i))
            i = end
            continue
        if ch in "\"'":
            end = text.find(ch, i + 1)
            newline = text.find("\n", i + 1)
            if end < 0 or 0 <= newline < end:
                raise ExpressionError("unterminated_string", "a quoted text is not closed", i)
            out.append(_Token("string", text[i + 1 : end], i))
            i = end + 1
            continue
        m = _NAME.match(text, i)
        if m is not None:
            out.append(_Token("name", m.group(), i))
            i = m.end()
            continue
        two = text[i : i + 2]
        if two in _MISTAKES:
            raise ExpressionError(
                "use_instead", f"write {_MISTAKES[two]!r} instead of {two!r}", i,
                found=two, instead=_MISTAKES[two],
            )  # fmt: skip
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            out.append(_Token("op", op, i))
            i += len(op)
            continue
        if ch in _MISTAKES:
            raise ExpressionError(
                "use_instead", f"write {_MISTAKES[ch]!r} instead of {ch!r}", i,
                found=ch, instead=_MISTAKES[ch],
            )  # fmt: skip
        if ch in "(),":
            out.append(_Token({"(": "lparen", ")": "rparen", ",": "comma"}[ch], ch, i))
            i += 1
            continue
        raise ExpressionError("bad_character", f"unexpected character {ch!r}", i, found=ch)
    out.append(_Token("end", "", n))
    return out


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------

_COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "!="})
_TYPE_NAMES = {NUMBER: "a number", TEXT: "a text", BOOL: "true/false", ANY: "a value"}


class _Parser:
    def __init__(self, text: str, known: Mapping[str, str]) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.depth = 0
        self.known = known

    # -- helpers ------------------------------------------------------------------------------

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.tok
        return tok.kind == "name" and tok.text.lower() == word

    def enter(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                "too_deep", f"the expression nests more than {MAX_DEPTH} levels", position,
                max=MAX_DEPTH,
            )  # fmt: skip

    def unexpected(self) -> ExpressionError:
        tok = self.tok
        if tok.kind == "end":
            return ExpressionError("unexpected_end", "the expression ends too early", tok.position)
        return ExpressionError(
            "unexpected", f"unexpected {tok.text!r}", tok.position, found=tok.text
        )

    def need(self, node: Expr, wanted: str, what: str) -> None:
        if node.type not in (wanted, ANY):
            raise ExpressionError(
                "type_mismatch",
                f"{what} needs {_TYPE_NAMES[wanted]}, not {_TYPE_NAMES[node.type]}",
                node.position,
                wanted=wanted,
                found=node.type,
                operator="rule" if what == "a rule" else what,
            )

    # -- grammar ------------------------------------------------------------------------------

    def parse(self) -> Expr:
        if self.tok.kind == "end":
            raise ExpressionError("empty", "the expression is empty", 0)
        node = self.or_()
        if self.tok.kind != "end":
            raise self.unexpected()
        self.need(node, BOOL, "a rule")
        return node

    def or_(self) -> Expr:
        return self._bool("or", self.and_)

    def and_(self) -> Expr:
        return self._bool("and", self.not_)

    def _bool(self, op: str, operand: Any) -> Expr:
        first = operand()
        operands = [first]
        while self.keyword(op):
            self.advance()
            operands.append(operand())
        if len(operands) == 1:
            return first
        for node in operands:
            self.need(node, BOOL, f"'{op}'")
        return BoolOp(first.position, op, tuple(operands))

    def not_(self) -> Expr:
        if self.keyword("not"):
            tok = self.advance()
            self.enter(tok.position)
            operand = self.not_()
            self.depth -= 1
            self.need(operand, BOOL, "'not'")
            return Not(tok.position, operand)
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.sum()
        if self.tok.kind == "op" and self.tok.text in _COMPARISONS:
            op = self.advance().text
            right = self.sum()
            if self.tok.kind == "op" and self.tok.text in _COMPARISONS:
                raise ExpressionError(
                    "chained_comparison",
                    "comparisons do not chain: join them with 'and'",
                    self.tok.position,
                )
            if op in ("==", "!="):
                if ANY not in (left.type, right.type) and left.type != right.type:
                    raise ExpressionError(
                        "type_mismatch",
                        f"'{op}' compares {_TYPE_NAMES[left.type]} with {_TYPE_NAMES[right.type]}",
                        right.position,
                        wanted=left.type,
                        found=right.type,
                        operator=f"'{op}'",
                    )
            else:
                self.need(left, NUMBER, f"'{op}'")
                self.need(right, NUMBER, f"'{op}'")
            return Compare(left.position, op, left, right)
        return left

    def sum(self) -> Expr:
        return self._arith(("+", "-"), self.product)

    def product(self) -> Expr:
        return self._arith(("*", "/"), self.unary)

    def _arith(self, ops: tuple[str, ...], operand: Any) -> Expr:
        left = operand()
        while self.tok.kind == "op" and self.tok.text in ops:
            op = self.advance().text
            right = operand()
            self.need(left, NUMBER, f"'{op}'")
            self.need(right, NUMBER, f"'{op}'")
            left = BinOp(left.position, op, left, right)
        return left

    def unary(self) -> Expr:
        if self.tok.kind == "op" and self.tok.text == "-":
            tok = self.advance()
            self.enter(tok.position)
            operand = self.unary()
            self.depth -= 1
            self.need(operand, NUMBER, "'-'")
            return Neg(tok.position, operand)
        return self.primary()

    def primary(self) -> Expr:
        tok = self.tok
        if tok.kind == "number":
            self.advance()
            value = float(tok.text.replace("_", ""))
            if not math.isfinite(value):
                raise ExpressionError("bad_number", "this number is too large", tok.position)
            return Literal(tok.position, value)
        if tok.kind == "string":
            self.advance()
            return Literal(tok.position, tok.text)
        if tok.kind == "lparen":
            self.advance()
            self.enter(tok.position)
            node = self.or_()
            self.depth -= 1
            if self.tok.kind != "rparen":
                if self.tok.kind == "end":
                    raise ExpressionError(
                        "unclosed_parenthesis", "a parenthesis is not closed", tok.position
                    )
                raise self.unexpected()
            self.advance()
            return node
        if tok.kind == "name":
            word = tok.text.lower()
            if word in ("true", "false"):
                self.advance()
                return Literal(tok.position, word == "true")
            if word in _KEYWORDS:
                raise self.unexpected()
            self.advance()
            if self.tok.kind == "lparen":
                return self.call(tok)
            return self.metric(tok)
        raise self.unexpected()

    def call(self, name: _Token) -> Expr:
        if name.text not in FUNCTIONS:
            raise ExpressionError(
                "unknown_function",
                f"unknown function {name.text!r} (use abs, min or max)",
                name.position,
                name=name.text,
            )
        lparen = self.advance()
        self.enter(lparen.position)
        args = [self.or_()]
        while self.tok.kind == "comma":
            self.advance()
            args.append(self.or_())
        self.depth -= 1
        if self.tok.kind != "rparen":
            if self.tok.kind == "end":
                raise ExpressionError(
                    "unclosed_parenthesis", "a parenthesis is not closed", lparen.position
                )
            raise self.unexpected()
        self.advance()
        low, high = FUNCTIONS[name.text]
        if not low <= len(args) <= high:
            raise ExpressionError(
                "bad_arguments",
                f"{name.text}() takes {'one value' if high == 1 else 'two or more values'}",
                name.position,
                name=name.text,
            )
        for arg in args:
            self.need(arg, NUMBER, f"{name.text}()")
        return Call(name.position, name.text, tuple(args))

    def metric(self, tok: _Token) -> Expr:
        kind = self.known.get(tok.text)
        if kind is None:
            close = difflib.get_close_matches(tok.text, list(self.known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ExpressionError(
                "unknown_metric",
                f"unknown metric {tok.text!r}{hint}",
                tok.position,
                name=tok.text,
                suggestion=close[0] if close else "",
            )
        return Metric(tok.position, tok.text, kind)


def parse(text: str, known_metrics: Mapping[str, str] | Collection[str]) -> Expr:
    """The expression tree of ``text``; raises :class:`ExpressionError` on any problem.

    ``known_metrics``: the names a rule may use, or a mapping name -> ``"number"`` /
    ``"text"`` / ``"bool"`` to check types as well.
    """
    if not isinstance(text, str):
        raise ExpressionError("empty", "the expression is empty", 0)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            "too_long", f"the expression is longer than {MAX_LENGTH} characters", MAX_LENGTH,
            max=MAX_LENGTH,
        )  # fmt: skip
    if isinstance(known_metrics, Mapping):
        known = {name: (kind if kind in TYPES else ANY) for name, kind in known_metrics.items()}
    else:
        known = dict.fromkeys(known_metrics, ANY)
    return _Parser(text, known).parse()


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


Evaluator = Callable[[Mapping[str, Value]], Value]


def evaluate(expr: Expr, metrics: Mapping[str, Value]) -> bool:
    """Whether the rule fires for these metric values (unknown does not fire)."""
    return compile_value(expr)(metrics) is True


def compile_rule(expr: Expr) -> Callable[[Mapping[str, Value]], bool]:
    """``evaluate`` for one expression over many accounts: the tree is turned into closures
    once (the nightly run evaluates every rule for every account, 50,000 times at 10,000
    accounts; walking the tree each time cost three times as much)."""
    value = compile_value(expr)
    return lambda metrics: value(metrics) is True


def evaluate_value(expr: Expr, metrics: Mapping[str, Value]) -> Value:
    """The value of any node; ``None`` is unknown (see the module docstring)."""
    return compile_value(expr)(metrics)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


_ORDER: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}


def compile_value(expr: Expr) -> Evaluator:
    """A function of the metrics that computes ``expr``'s value: the one implementation of
    the semantics in the module docstring (``None`` is unknown). A node's value is a finite
    float, a text, a bool or ``None``; metrics are read through ``_number`` like any value."""
    if isinstance(expr, Literal):
        constant = expr.value
        return lambda metrics: constant
    if isinstance(expr, Metric):
        return _compile_metric(expr.name)
    if isinstance(expr, BoolOp):
        return _compile_bool(expr.op == "or", [compile_value(node) for node in expr.operands])
    if isinstance(expr, Not):
        operand = compile_value(expr.operand)

        def negation(metrics: Mapping[str, Value]) -> Value:
            value = operand(metrics)
            return (not value) if isinstance(value, bool) else None

        return negation
    if isinstance(expr, Compare):
        return _compile_compare(expr)
    if isinstance(expr, Neg):
        inner = compile_value(expr.operand)

        def minus(metrics: Mapping[str, Value]) -> Value:
            value = _number(inner(metrics))
            return None if value is None else -value

        return minus
    if isinstance(expr, BinOp):
        return _compile_arithmetic(expr.op, compile_value(expr.left), compile_value(expr.right))
    if isinstance(expr, Call):
        return _compile_call(expr.function, [compile_value(a) for a in expr.args])
    raise TypeError(f"not an expression node: {expr!r}")


def _compile_metric(name: str) -> Evaluator:
    def metric(metrics: Mapping[str, Value]) -> Value:
        value = metrics.get(name)
        if type(value) is float:
            return value if -math.inf < value < math.inf else None
        if isinstance(value, bool | str) or value is None:
            return value
        return _number(value)

    return metric


def _compile_bool(is_or: bool, operands: list[Evaluator]) -> Evaluator:
    def boolean(metrics: Mapping[str, Value]) -> Value:
        unknown = False
        for operand in operands:
            value = operand(metrics)
            if not isinstance(value, bool):
                unknown = True
            elif value is is_or:
                return value  # true or ..., false and ...
        return None if unknown else not is_or

    return boolean


def _compile_compare(expr: Compare) -> Evaluator:
    op = expr.op
    left, right = compile_value(expr.left), compile_value(expr.right)
    order = _ORDER.get(op)
    bound = _number(expr.right.value) if isinstance(expr.right, Literal) else None
    if order is not None and bound is not None and not isinstance(expr.left, Literal):
        # ``metric < 30``, the common shape: a float on the left needs no other check (only a
        # literal can be an infinite float; every other node gives finite ones or None)

        def against_number(metrics: Mapping[str, Value]) -> Value:
            value = left(metrics)
            if type(value) is float:
                return order(value, bound)
            return _compare(op, value, bound)

        return against_number
    return lambda metrics: _compare(op, left(metrics), right(metrics))


def _compile_arithmetic(op: str, left: Evaluator, right: Evaluator) -> Evaluator:
    apply = _ARITHMETIC.get(op)

    def arithmetic(metrics: Mapping[str, Value]) -> Value:
        a = _number(left(metrics))
        b = _number(right(metrics))
        if a is None or b is None:
            return None
        if apply is not None:
            result = apply(a, b)
        elif b == 0:
            return None
        else:
            result = a / b
        return result if math.isfinite(result) else None

    return arithmetic


def _compile_call(function: str, args: list[Evaluator]) -> Evaluator:
    def call(metrics: Mapping[str, Value]) -> Value:
        values = [_number(a(metrics)) for a in args]
        if any(v is None for v in values):
            return None
        numbers = [v for v in values if v is not None]
        if function == "abs":
            return abs(numbers[0])
        return min(numbers) if function == "min" else max(numbers)

    return call


def _compare(op: str, left: Value, right: Value) -> bool | None:
    if left is None or right is None:
        return None
    if op in ("==", "!="):
        if isinstance(left, bool) != isinstance(right, bool):
            return None
        if isinstance(left, str) != isinstance(right, str):
            return None
        equal = left == right
        return equal if op == "==" else not equal
    a, b = _number(left), _number(right)
    if a is None or b is None:
        return None
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b
