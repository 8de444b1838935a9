"""Go string quoting and whitespace, so that keys and parsing match Alertmanager's.

Route ids, group keys and matcher strings are compared across pagerd and Alertmanager, so
they must be spelled the way Go's `strconv.Quote` spells them; the UTF-8 matcher parser
unquotes the way `strconv.Unquote` does, and trims the way `unicode.IsSpace` says.
"""

from __future__ import annotations

# unicode.IsSpace: Latin-1 spaces plus the White_Space property. Python's str.isspace
# also counts the C0 separators U+001C..U+001F, which Go does not.
GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

_SHORT_ESCAPES = {"\a": "a", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t", "\v": "v"}
_UNESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_HEX = frozenset("0123456789abcdefABCDEF")
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}


def go_trim_space(text: str) -> str:
    """`text` without leading and trailing Go whitespace (strings.TrimSpace)."""
    start, end = 0, len(text)
    while start < end and text[start] in GO_SPACE:
        start += 1
    while end > start and text[end - 1] in GO_SPACE:
        end -= 1
    return text[start:end]


def go_quote(text: str) -> str:
    """`text` as a double-quoted Go string literal, escaped as strconv.Quote escapes it."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            # Python's printable set (letters, marks, numbers, punctuation, symbols and the
            # ASCII space) is the set Go's strconv.IsPrint defines.
            out.append(char)
        elif char in _SHORT_ESCAPES:
            out.append("\\" + _SHORT_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_unquote(literal: str) -> str:
    """The value of a double-quoted Go string literal; ValueError if it is not one.

    As strconv.Unquote: \\x and octal escapes are bytes, \\u and \\U are code points, a raw
    newline is refused, and the result must be valid UTF-8.
    """
    if len(literal) < 2 or literal[0] != '"' or literal[-1] != '"':
        raise ValueError("not a double-quoted string")
    body = literal[1:-1]
    if "\n" in body:
        raise ValueError("newline in quoted string")
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char == '"':
            raise ValueError("unescaped double quote")
        if char != "\\":
            out += char.encode("utf-8", "surrogatepass")
            i += 1
            continue
        i = _unescape(body, i + 1, out)
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("quoted string contains invalid UTF-8 code points") from exc


def _unescape(body: str, i: int, out: bytearray) -> int:
    """Append the escape starting at `body[i]` (just after the backslash); the next index."""
    if i >= len(body):
        raise ValueError("backslash at end of string")
    kind = body[i]
    if kind in _UNESCAPES:
        out.append(_UNESCAPES[kind])
        return i + 1
    if kind in _HEX_WIDTH:
        digits = body[i + 1 : i + 1 + _HEX_WIDTH[kind]]
        if len(digits) != _HEX_WIDTH[kind] or not set(digits) <= _HEX:
            raise ValueError(f"invalid \\{kind} escape")
        value = int(digits, 16)
        if kind == "x":
            out.append(value)
        elif value > 0x10FFFF or 0xD800 <= value < 0xE000:
            raise ValueError(f"invalid code point \\{kind}{digits}")
        else:
            out += chr(value).encode("utf-8")
        return i + 1 + len(digits)
    if "0" <= kind <= "7":
        digits = body[i : i + 3]
        if len(digits) != 3 or not all("0" <= d <= "7" for d in digits) or int(digits, 8) > 255:
            raise ValueError("invalid octal escape")
        out.append(int(digits, 8))
        return i + 3
    raise ValueError(f"invalid escape \\{kind}")


def go_label_set(labels: dict[str, str]) -> str:
    """A label set spelled as Prometheus' model.LabelSet.String: `{a="1", b="2"}`."""
    pairs = ", ".join(f"{name}={go_quote(labels[name])}" for name in sorted(labels))
    return "{" + pairs + "}"
