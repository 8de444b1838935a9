"""Parsing of matcher lists (`foo="bar", baz=~"a|b"`), with Alertmanager's two parsers.

Alertmanager's default mode tries its classic parser first and the newer UTF-8 parser
only when the classic one refuses the input (where both accept, the classic reading is the
one used). So does `parse_matchers`; a config that Alertmanager reads one way is read the
same way here, and one it refuses is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pagerd.routing.gostrings import GO_SPACE, go_trim_space, go_unquote
from pagerd.routing.matchers import Matcher, MatcherError, MatchType

# Go's \s is ASCII-only and has no \v; `.*?` with DOTALL is Go's `(?s).*?`.
_CLASSIC = re.compile(
    r"[\t\n\f\r ]*([a-zA-Z_:][a-zA-Z0-9_:]*)[\t\n\f\r ]*(=~|=|!=|!~)[\t\n\f\r ]*(.*?)[\t\n\f\r ]*",
    re.DOTALL,
)


def parse_matchers(text: str) -> list[Matcher]:
    """The matchers in one `matchers:` item; MatcherError (with the classic parser's
    reason, as Alertmanager gives it) if neither parser accepts it."""
    try:
        return parse_classic(text)
    except MatcherError as classic_error:
        try:
            return parse_utf8(text)
        except MatcherError:
            raise classic_error from None


# --- The classic parser (pkg/labels) -----------------------------------------------------


def parse_classic(text: str) -> list[Matcher]:
    """Matchers by the classic parser: split on commas outside quotes, one regex each."""
    text = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for char in text:
        if char == "," and not inside_quotes:
            tokens.append("".join(token))
            token = []
            continue
        if char == '"':
            if escaped:
                escaped = False
            else:
                inside_quotes = not inside_quotes
        elif char == "\\":
            escaped = not escaped
        elif char != ",":
            # A comma inside quotes leaves `escaped` as it was, as in Alertmanager.
            escaped = False
        token.append(char)
    last = go_trim_space("".join(token))
    if last:
        tokens.append(last)
    return [_parse_classic_one(token) for token in tokens]


def _parse_classic_one(text: str) -> Matcher:
    found = _CLASSIC.fullmatch(text)
    if found is None:
        raise MatcherError(f"bad matcher format: {text}")
    name, op, raw = found.groups()
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    value: list[str] = []
    escaped = False
    for i, char in enumerate(body):
        last = i == len(body) - 1
        if escaped:
            escaped = False
            # A spurious escape keeps its backslash.
            value.append({"n": "\n", '"': '"', "\\": "\\"}.get(char, "\\" + char))
        elif char == "\\" and not last:
            escaped = True
        elif char == '"':
            if not quoted or not last:
                raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
            quoted = False
        else:
            value.append(char)
    if quoted:
        raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
    return Matcher(name, MatchType(op), "".join(value))


# --- The UTF-8 parser (matcher/parse) ----------------------------------------------------

_EOF = "EOF"
_OPERATORS = {op.value: op for op in MatchType}
_RESERVED = frozenset("{}!=~,\\\"'`") | GO_SPACE


@dataclass(frozen=True)
class _Token:
    """A lexeme: its kind (`{`, `}`, `,`, an operator, `quoted`, `unquoted` or EOF), its
    text and its 0-based column span, in characters, for error messages."""

    kind: str
    text: str
    start: int
    end: int


def _lex(text: str) -> list[_Token]:
    """All tokens of `text`, ending with EOF; MatcherError on input no token can start."""
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in GO_SPACE:
            i += 1
            continue
        end = _token_end(text, i)
        chunk = text[i:end]
        kind = chunk if chunk in ("{", "}", ",") or chunk in _OPERATORS else "unquoted"
        if char == '"':
            kind = "quoted"
        tokens.append(_Token(kind, chunk, i, end))
        i = end
    tokens.append(_Token(_EOF, "", len(text), len(text)))
    return tokens


def _token_end(text: str, i: int) -> int:
    char = text[i]
    if char in "{},":
        return i + 1
    if char in "=!":
        return _operator_end(text, i)
    if char == '"':
        return _quoted_end(text, i)
    if char not in _RESERVED:
        end = i
        while end < len(text) and text[end] not in _RESERVED:
            end += 1
        return end
    raise MatcherError(f"{i}:{i + 1}: {char}: invalid input")


def _operator_end(text: str, i: int) -> int:
    following = text[i + 1 : i + 2]
    if text[i] == "!":
        if following in ("=", "~"):
            return i + 2
        raise MatcherError(f"{i}:{i + 1}: {text[i : i + 2]}: expected one of '=~'")
    return i + 2 if following == "~" else i + 1


def _quoted_end(text: str, i: int) -> int:
    escaped = False
    for end in range(i + 1, len(text)):
        if escaped:
            escaped = False
        elif text[end] == "\\":
            escaped = True
        elif text[end] == '"':
            return end + 1
    raise MatcherError(f'{i}:{len(text)}: {text[i:]}: missing end "')


class _Utf8Parser:
    """A parser of `{? matcher (, matcher)* ,? }?` over the lexed tokens."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.at = 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self, *kinds: str, expected: str) -> _Token:
        token = self.peek()
        if token.kind == _EOF:
            raise MatcherError(f"{token.start}:{token.end}: end of input: {expected}")
        if token.kind not in kinds:
            raise MatcherError(f"{token.start}:{token.end}: unexpected {token.text}: {expected}")
        self.at += 1
        return token

    def parse(self) -> list[Matcher]:
        matchers: list[Matcher] = []
        braced = self.peek().kind == "{"
        if braced:
            self.at += 1
        while self.peek().kind in ("quoted", "unquoted"):
            matchers.append(self.matcher())
            if self.peek().kind != ",":
                break
            self.at += 1
        self.close(braced)
        return matchers

    def matcher(self) -> Matcher:
        name = _unquote(self.take("quoted", "unquoted", expected="expected label name"))
        op = self.take(*_OPERATORS, expected="expected an operator such as '=', '!=', '=~' or '!~'")
        value = _unquote(self.take("quoted", "unquoted", expected="expected label value"))
        try:
            return Matcher(name, _OPERATORS[op.kind], value)
        except MatcherError as exc:
            raise MatcherError(f"failed to create matcher: {exc}") from None

    def close(self, braced: bool) -> None:
        token = self.peek()
        if braced:
            self.take("}", expected="expected close brace")
        elif token.kind == "}":
            raise MatcherError(f"0:{token.end}: }}: expected opening brace")
        elif token.kind != _EOF:
            raise MatcherError(
                f"{token.start}:{token.end}: unexpected {token.text}: "
                "expected a comma or close brace"
            )
        token = self.peek()
        if token.kind != _EOF:
            raise MatcherError(f"{token.start}:{token.end}: {token.text}: expected end of input")


def _unquote(token: _Token) -> str:
    if token.kind != "quoted":
        return token.text
    try:
        return go_unquote(token.text)
    except ValueError:
        raise MatcherError(f"{token.start}:{token.end}: {token.text}: invalid input") from None


def parse_utf8(text: str) -> list[Matcher]:
    """Matchers by the UTF-8 parser: quoted or bare names and values, Go string escapes."""
    return _Utf8Parser(text).parse()
