"""Arithmetic: spoken expressions ("twelve times seven", "15 percent of 80", "三加五") → an exact answer.

An expression is written canonically with digits and ``+ - * / %`` ("12 * 7", "15% * 80"), which
is what the intent passes to the ``calculate`` tool and what an LLM could pass too. It is evaluated
by a small parser (precedence, unary minus, percent), never by ``eval``. Numbers are floats; the
answer is rounded to what is worth saying, with "about" when it is not exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .numbers import format_number, is_exact, parse_quantity, rounded

# Operator words → symbols, longest first. "x" only between numbers ("3 x 4").
_EN_OPS = (("multiplied by", "*"), ("divided by", "/"), ("percent of", "% *"), ("per cent of", "% *"),
           ("to the power of", "^"), ("take away", "-"), ("plus", "+"), ("add", "+"), ("minus", "-"),
           ("times", "*"), ("over", "/"), ("percent", "%"), ("% of", "% *"), ("%", "%"), ("×", "*"), ("÷", "/"),
           ("+", "+"), ("*", "*"), ("/", "/"))
_ZH_OPS = (("乘以", "*"), ("乘上", "*"), ("除以", "/"), ("加上", "+"), ("减去", "-"), ("乘", "*"),
           ("加", "+"), ("减", "-"), ("×", "*"), ("÷", "/"), ("+", "+"), ("*", "*"), ("/", "/"))
_SPOKEN_EN = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
_SPOKEN_ZH = {"+": "加", "-": "减", "*": "乘以", "/": "除以"}
_CANONICAL = re.compile(r"\s*(\d+(?:\.\d+)?|[-+*/%()])")


class CalcError(ValueError):
    """Not an expression, or one without an answer (division by zero)."""


def _zh_percent(text: str) -> str:
    """"八十的百分之十五" → "百分之十五 of 八十" order: "15% * 80"; "百分之十五" alone → "15%"."""
    m = re.fullmatch(r"(.+?)的百分之(.+)", text)
    if m:
        return f"{m.group(2)}%*{m.group(1)}"
    return re.sub(r"百分之([零〇一二两三四五六七八九十百千万点\d.]+)", r"\1%", text)


def spoken_expression(text: str) -> str | None:
    """A spoken expression → canonical ("12 * 7"), or None unless it is numbers joined by operators."""
    zh = re.search(r"[\u4e00-\u9fff]", text) is not None
    s = _zh_percent(text.strip()) if zh else f" {text.strip().lower()} "
    ops = _ZH_OPS if zh else _EN_OPS
    for word, sym in ops:
        s = s.replace(word if zh or not word.isalpha() else f" {word} ", f" {sym} ")
    if not zh:
        s = re.sub(r"(?<=[\d\s])x(?=[\s\d])", " * ", s)
    parts = re.split(r"\s*([-+*/%^])\s*", s.strip())
    out: list[str] = []
    operators = 0
    for i, part in enumerate(parts):
        part = part.strip()
        if i % 2:                              # an operator (a leading minus is a sign)
            out.append(part)
            operators += part != "%" and not (i == 1 and not parts[0].strip())
            continue
        if not part:
            if i == 0 and len(parts) > 1 and parts[1] == "-":
                continue                        # a leading minus
            if i > 0 and parts[i - 1] == "%":
                continue                        # "15 %" then an operator or the end
            return None
        value = parse_quantity(part)
        if value is None:
            return None
        out.append(format_number(value))
    if operators == 0 or "^" in out:
        return None
    return " ".join(out).replace(" %", "%")


@dataclass(frozen=True)
class Result:
    expression: str        # canonical
    value: float

    def say(self, lang: str) -> str:
        about = not is_exact(self.value)
        number = format_number(rounded(self.value))
        if lang == "zh":
            return f"{say_expression(self.expression, 'zh')}{'约等于' if about else '等于'}{number}。"
        return f"{say_expression(self.expression, 'en')} is {'about ' if about else ''}{number}."


def say_expression(expression: str, lang: str) -> str:
    """"15% * 80" → "15 percent of 80" / "80的百分之15"; "12 * 7" → "12 times 7" / "12乘以7"."""
    m = re.fullmatch(r"\s*(\S+)%\s*\*\s*(\S+)\s*", expression)
    if m:
        return f"{m.group(2)}的百分之{m.group(1)}" if lang == "zh" else f"{m.group(1)} percent of {m.group(2)}"
    words = _SPOKEN_ZH if lang == "zh" else _SPOKEN_EN
    out: list[str] = []
    for tok in _CANONICAL.findall(expression):
        if tok == "%":
            out[-1] = f"百分之{out[-1]}" if lang == "zh" else f"{out[-1]} percent"
        else:
            out.append(words.get(tok, tok))
    return "".join(out) if lang == "zh" else " ".join(out)


def calculate(expression: str) -> Result:
    """Evaluate a canonical expression; :class:`CalcError` when it is not one or has no answer."""
    tokens = _tokenize(expression)
    parser = _Parser(tokens)
    value = parser.sum()
    if parser.pos != len(tokens):
        raise CalcError(f"unexpected {tokens[parser.pos]!r} in {expression!r}")
    return Result(" ".join(expression.split()), value)


def _tokenize(expression: str) -> list[str]:
    pos, out = 0, []
    expression = expression.strip()
    while pos < len(expression):
        m = _CANONICAL.match(expression, pos)
        if m is None:
            raise CalcError(f"not an expression: {expression!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(expression) and expression[pos].isspace():
            pos += 1
    if not out:
        raise CalcError("empty expression")
    return out


class _Parser:
    """sum := product (("+"|"-") product)*; product := unary (("*"|"/") unary)*;
    unary := "-" unary | atom "%"?; atom := number | "(" sum ")"."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> str:
        tok = self._peek()
        if tok is None:
            raise CalcError("the expression ends too early")
        self.pos += 1
        return tok

    def sum(self) -> float:
        value = self.product()
        while self._peek() in ("+", "-"):
            value = value + self.product() if self._next() == "+" else value - self.product()
        return value

    def product(self) -> float:
        value = self.unary()
        while self._peek() in ("*", "/"):
            if self._next() == "*":
                value *= self.unary()
                continue
            divisor = self.unary()
            if divisor == 0:
                raise CalcError("division by zero")
            value /= divisor
        return value

    def unary(self) -> float:
        if self._peek() == "-":
            self._next()
            return -self.unary()
        value = self.atom()
        if self._peek() == "%":
            self._next()
            value /= 100
        return value

    def atom(self) -> float:
        tok = self._next()
        if tok == "(":
            value = self.sum()
            if self._next() != ")":
                raise CalcError("unbalanced parenthesis")
            return value
        try:
            return float(tok)
        except ValueError:
            raise CalcError(f"unexpected {tok!r}") from None
