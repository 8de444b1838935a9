"""Matchers: the four operators, Alertmanager's spelling, and its matcher-list parsers."""

from __future__ import annotations

import time

import pytest
import re2
from hypothesis import given
from hypothesis import strategies as st

from pagerd.routing.gostrings import go_label_set, go_quote, go_unquote
from pagerd.routing.matcher_parse import parse_classic, parse_matchers, parse_utf8
from pagerd.routing.matchers import (
    Matcher,
    MatcherError,
    MatchType,
    format_matchers,
    sort_matchers,
)
from pagerd.routing.regex import Regex

# (name, op, value, labels, matches)
MATCH_TABLE = [
    ("team", "=", "db", {"team": "db"}, True),
    ("team", "=", "db", {"team": "dba"}, False),
    ("team", "=", "", {}, True),  # a missing label is the empty string
    ("team", "=", "", {"team": ""}, True),
    ("team", "!=", "db", {"team": "web"}, True),
    ("team", "!=", "db", {}, True),
    ("team", "!=", "", {}, False),
    ("team", "=~", "db|web", {"team": "web"}, True),
    ("team", "=~", "db", {"team": "mydb"}, False),  # anchored at the start...
    ("team", "=~", "db", {"team": "dbx"}, False),  # ...and at the end
    ("team", "=~", "d.*", {"team": "db"}, True),
    ("team", "=~", ".*", {}, True),
    ("team", "=~", ".+", {}, False),
    ("team", "=~", "a.b", {"team": "a\nb"}, False),  # `.` does not match a newline in Go
    ("team", "=~", "(?s)a.b", {"team": "a\nb"}, True),
    ("team", "=~", "db$|web", {"team": "db\n"}, False),  # `$` is the end of text only
    ("team", "=~", r"\pL+", {"team": "équipe"}, True),
    ("team", "!~", "db|web", {"team": "web"}, False),
    ("team", "!~", "db|web", {"team": "ops"}, True),
    ("team", "!~", ".+", {}, True),
]


@pytest.mark.parametrize(("name", "op", "value", "labels", "expected"), MATCH_TABLE)
def test_matcher_matches(
    name: str, op: str, value: str, labels: dict[str, str], expected: bool
) -> None:
    """Each operator against present, absent and empty labels."""
    assert Matcher(name, op, value).matches(labels) is expected


def test_hostile_regex_is_linear() -> None:
    """A pattern that makes a backtracking engine take forever is quick under RE2."""
    matcher = Matcher("x", "=~", "(a|aa)*(a|aa)*b")
    started = time.perf_counter()
    assert not matcher.matches({"x": "a" * 20_000})
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("pattern", ["(", "a{2,1}", "(?<=a)b", r"\C", "a**"])
def test_bad_regex_is_refused(pattern: str) -> None:
    """Patterns that Go's regexp refuses (RE2 accepts `\\C`; Go does not)."""
    with pytest.raises(MatcherError, match="error parsing regexp"):
        Matcher("x", "=~", pattern)


def test_unknown_operator_is_refused() -> None:
    """Only the four operators exist."""
    with pytest.raises(MatcherError, match="unknown match operator"):
        Matcher("x", "==", "y")


@pytest.mark.parametrize(
    ("matcher", "spelled"),
    [
        (Matcher("team", "=", "db"), 'team="db"'),
        (Matcher("team", "=~", "a|b"), 'team=~"a|b"'),
        (Matcher("q", "!=", 'say "hi"\\\n'), 'q!="say \\"hi\\"\\\\\\n"'),
        (Matcher("q", "!~", "tab\there"), 'q!~"tab\there"'),  # only \\ \n " are escaped
        (Matcher("has space", "=", "a\tb"), '"has space"="a\\tb"'),  # quoted the Go way
        (Matcher("é.x", "=", "ü"), 'é.x="ü"'),
    ],
)
def test_matcher_spelling(matcher: Matcher, spelled: str) -> None:
    """Matchers print as Alertmanager prints them: route ids are made of this text."""
    assert str(matcher) == spelled


def test_matchers_sort_as_alertmanager() -> None:
    """By name, then value, then operator in the order = != =~ !~."""
    matchers = [
        Matcher("b", "=", "1"),
        Matcher("a", "!~", "x"),
        Matcher("a", "=", "x"),
        Matcher("a", "=~", "x"),
        Matcher("a", "=", "w"),
    ]
    assert format_matchers(sort_matchers(matchers)) == ('{a="w",a="x",a=~"x",a!~"x",b="1"}')


# (text, expected spelling of the parsed list) -- the default (fallback) parser.
PARSE_TABLE = [
    ('foo="bar"', '{foo="bar"}'),
    ("foo=bar", '{foo="bar"}'),
    ('{foo="bar", baz!~"a|b"}', '{foo="bar",baz!~"a|b"}'),
    ('  foo =~ "a.*" ', '{foo=~"a.*"}'),
    ('foo!=""', '{foo!=""}'),
    ("foo=", '{foo=""}'),
    ("", "{}"),
    ("{}", "{}"),
    ('foo="bar,baz", qux=1', '{foo="bar,baz",qux="1"}'),
    ('foo="a\\"b"', '{foo="a\\"b"}'),
    ('foo="a\\nb"', '{foo="a\\nb"}'),
    ('foo="a\\\\b"', '{foo="a\\\\b"}'),
    ('foo=~"a\\.b"', '{foo=~"a\\\\.b"}'),  # a spurious escape keeps its backslash
    ("foo=bar baz", '{foo="bar baz"}'),  # classic: the value runs to the end
    ("{foo=bar}}", '{foo="bar}"}'),  # classic: one brace trimmed each side
    ("{foo=,bar=}}", '{foo="",bar="}"}'),
    ("tricky=~~~", '{tricky=~"~~"}'),
    ("foo=bar,", '{foo="bar"}'),
    ('{name-with-dashes = "bar"}', '{name-with-dashes="bar"}'),  # UTF-8 parser only
    ('"foo bar"="x"', '{"foo bar"="x"}'),
    ('{"a"="\\U0001f642"}', '{a="🙂"}'),
    ("service.name=checkout", '{service.name="checkout"}'),
]


@pytest.mark.parametrize(("text", "spelled"), PARSE_TABLE)
def test_parse_matchers(text: str, spelled: str) -> None:
    """What Alertmanager's default mode reads from one `matchers:` item."""
    assert format_matchers(parse_matchers(text)) == spelled


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{,}", "bad matcher format"),
        ('job="value', "unescaped double quote"),
        ('job=value"', "unescaped double quote"),
        ('foo="bar",baz', "bad matcher format: baz"),
        ("{{foo=", "bad matcher format"),
        ('"foo=\\"bar\\""', "bad matcher format"),
        ('{foo=~"invalid[regexp"}', "error parsing regexp"),
        ("foo", "bad matcher format"),
    ],
)
def test_parse_matchers_refuses(text: str, reason: str) -> None:
    """Input both parsers refuse; the reason is the classic parser's, as in Alertmanager."""
    with pytest.raises(MatcherError, match=reason):
        parse_matchers(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (",", "unexpected ,"),
        ("{", "end of input: expected close brace"),
        ("}", "expected opening brace"),
        ("foo=bar}", "expected opening brace"),
        ('{foo="bar\\w"}', "invalid input"),
        ("{foo=bar\\n}", "invalid input"),
        ('{"foo"="\\xf0\\x9f"}', "invalid input"),  # not UTF-8 once unescaped
        ("foo=bar baz", "expected a comma or close brace"),
        ("foo!bar", "expected one of '=~'"),
        ('foo="bar', 'missing end "'),
    ],
)
def test_utf8_parser_refuses(text: str, reason: str) -> None:
    """The UTF-8 parser alone is stricter: quoted escapes must be Go's."""
    with pytest.raises(MatcherError, match=reason):
        parse_utf8(text)


def test_classic_wins_where_both_parse() -> None:
    """Where the parsers disagree, Alertmanager keeps the classic reading."""
    assert parse_utf8('foo="a\\tb"')[0].value == "a\tb"
    assert parse_classic('foo="a\\tb"')[0].value == "a\\tb"
    assert parse_matchers('foo="a\\tb"')[0].value == "a\\tb"


_NAMES = st.one_of(
    st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=8),
)
_VALUES = st.text(st.characters(codec="utf-8"), max_size=12)


@given(name=_NAMES, op=st.sampled_from(["=", "!="]), value=_VALUES)
def test_spelling_parses_back(name: str, op: str, value: str) -> None:
    """A matcher's spelling reads back as the same matcher, whatever its name and value."""
    matcher = Matcher(name, MatchType(op), value)
    assert parse_matchers(str(matcher)) == [matcher]


@given(_VALUES)
def test_go_quote_round_trip(value: str) -> None:
    """go_unquote undoes go_quote."""
    assert go_unquote(go_quote(value)) == value


def test_go_quote_escapes() -> None:
    """Escapes as strconv.Quote writes them: short forms, \\x, \\u, \\U; printable kept."""
    assert go_quote('a"b\\c\n\x01\x7f\u00ad\U000e0001é🙂') == (
        '"a\\"b\\\\c\\n\\x01\\x7f\\u00ad\\U000e0001é🙂"'
    )


def test_label_set_spelling() -> None:
    """Prometheus' LabelSet.String: sorted names, quoted values, comma and space."""
    assert go_label_set({"b": "2", "a": 'x"y'}) == '{a="x\\"y", b="2"}'
    assert go_label_set({}) == "{}"


@pytest.mark.parametrize("pattern", ["", "a|", "critical|page", "a-b|c:d|e/f@g h", "x", ".*", "a+"])
def test_fast_paths_agree_with_re2(pattern: str) -> None:
    """The literal-set and direct RE2 paths answer as RE2's own full match does."""
    reference = re2.compile(f"^(?:{pattern})$")
    fast = Regex(pattern)
    for value in ["", "a", "critical", "page", "pag", "a-b", "e/f@g h", "x", "xx", "a\nb"]:
        assert fast.matches(value) is (reference.search(value) is not None), value


def test_lone_surrogate_does_not_crash() -> None:
    """JSON can carry a lone surrogate in a label value; matching must not raise."""
    assert not Matcher("x", "=~", "a.*z").matches({"x": "a\ud800"})
    assert Matcher("x", "!~", "a|b").matches({"x": "\ud800"})
