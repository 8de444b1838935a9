"""Reading Azure Monitor JSON by path, and the label, time and identity helpers its parsers share.

Every Azure parser reads the payload through `Node`, so a value of the wrong type becomes a
`PayloadError` naming its JSON path (`data.essentials.monitorCondition`) instead of a
`KeyError` or `AttributeError` deep inside a parser.

Strictness is split on purpose: fields that decide identity, state or time are checked and
refused when wrong; descriptive fields are rendered as text whatever their JSON type, since
Azure's own samples disagree on them (numbers for enums, arrays for strings) and refusing an
alert for a cosmetic field would lose a page.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from pagerd.models import Alert
from pagerd.receivers.errors import PayloadError

_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_]")
# "3/22/2019 1:36:31 PM": the US-style UTC stamp of log search alerts v1.
_US_STAMP = "%m/%d/%Y %I:%M:%S %p"


@dataclass(slots=True)
class AzureParse:
    """What one Azure payload became: its alerts, which parser took it, and whether it knew it.

    `kind` names the parser (`common/metric-static`, `legacy/activitylog-administrative`,
    `generic`); `known` is False when no parser recognised the shape and the payload was
    kept whole as a generic alert.
    """

    alerts: list[Alert]
    kind: str
    known: bool = True
    # Extra facts for the intake's log line, e.g. why a payload fell to the generic path.
    notes: dict[str, str] = field(default_factory=dict)


class Node:
    """A JSON object at a path, read through getters that name the path when a value is wrong."""

    __slots__ = ("data", "path")

    def __init__(self, data: Mapping[str, object], path: str) -> None:
        self.data = data
        self.path = path

    @classmethod
    def of(cls, value: object, path: str) -> Node:
        """The object `value`, or a PayloadError if it is not a JSON object."""
        if not isinstance(value, Mapping):
            raise PayloadError(path, f"expected an object, got {json_type(value)}")
        return cls(value, path)

    def at(self, key: str) -> str:
        """The JSON path of `key` under this object."""
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        """Whether `key` is present and not null."""
        return self.data.get(key) is not None

    def raw(self, key: str) -> object:
        """The value of `key` as it is, None when absent."""
        return self.data.get(key)

    def obj(self, key: str) -> Node:
        """The object at `key`; an empty one when absent or null."""
        value = self.data.get(key)
        if value is None:
            return Node({}, self.at(key))
        return Node.of(value, self.at(key))

    def req_obj(self, key: str) -> Node:
        """The object at `key`, which must be present."""
        if self.data.get(key) is None:
            raise PayloadError(self.at(key), "required object is missing")
        return self.obj(key)

    def text(self, key: str) -> str:
        """The value of `key` rendered as text; "" when absent or null."""
        return as_text(self.data.get(key))

    def req_text(self, key: str) -> str:
        """The string at `key`, which must be present and not blank."""
        value = self.data.get(key)
        if not isinstance(value, str):
            reason = "required string is missing" if value is None else "expected a string"
            raise PayloadError(self.at(key), reason)
        if not value.strip():
            raise PayloadError(self.at(key), "required string is empty")
        return value

    def opt_text(self, key: str) -> str:
        """The string at `key`, "" when absent or null; any other type is refused."""
        value = self.data.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise PayloadError(self.at(key), f"expected a string, got {json_type(value)}")
        return value

    def items(self, key: str) -> list[object]:
        """The array at `key`; empty when absent or null."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise PayloadError(self.at(key), f"expected an array, got {json_type(value)}")
        return value

    def objs(self, key: str) -> list[Node]:
        """The array of objects at `key`; empty when absent or null."""
        path = self.at(key)
        return [Node.of(item, f"{path}[{i}]") for i, item in enumerate(self.items(key))]

    def time(self, key: str) -> datetime | None:
        """The timestamp at `key` (UTC when it names no zone); None when absent or blank."""
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise PayloadError(self.at(key), f"expected a timestamp, got {json_type(value)}")
        stamp = parse_time(value)
        if stamp is None:
            raise PayloadError(self.at(key), "not a timestamp")
        return stamp

    def time_text(self, key: str) -> str:
        """The timestamp at `key` as ISO 8601 UTC when it parses, else the text as given."""
        value = self.text(key)
        stamp = parse_time(value)
        return stamp.isoformat() if stamp is not None else value


def json_type(value: object) -> str:
    """The JSON type name of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def as_text(value: object) -> str:
    """Any JSON value as display text: strings as they are, the rest as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # 7.0 reads as 7 in Azure's own UI; NaN and infinities have no JSON spelling.
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return canonical_json(value)


def canonical_json(value: object) -> str:
    """Compact JSON with sorted keys: a stable text of a value for display and hashing."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError, RecursionError):
        # Only non-JSON input (mixed key types, cycles) gets here; repr is still stable.
        return repr(value)


def parse_time(text: str) -> datetime | None:
    """A timezone-aware datetime from the formats Azure sends; None when none fits.

    ISO 8601 with up to 7 fractional digits, the US-style "3/22/2019 1:36:31 PM" of log search
    alerts v1, and RFC 1123 ("Wed, 21 Aug 2019 16:17:47 GMT"). A stamp without a zone is UTC,
    which is what Azure documents for all of them.
    """
    text = text.strip()
    if not text or len(text) > 64:
        return None
    stamp: datetime | None = None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        stamp = _parse_other(text)
    if stamp is None:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


def _parse_other(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, _US_STAMP)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def fingerprint_of(*parts: str) -> str:
    """A stable 16-hex-digit alert identity: the head of SHA-256 over the parts.

    The parts are joined with a unit separator so ("a", "bc") and ("ab", "c") differ.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def label_name(prefix: str, name: str) -> str:
    """`prefix` + `name` made a valid Prometheus label name (invalid characters become `_`)."""
    clean = _LABEL_CHARS.sub("_", name) or "_"
    full = prefix + clean
    return f"_{full}" if full[0].isdigit() else full


def prefixed_labels(prefix: str, pairs: Iterable[tuple[str, object]]) -> dict[str, str]:
    """Name/value pairs as labels named `prefix` + sanitised name; empty values are dropped."""
    labels: dict[str, str] = {}
    for name, value in pairs:
        text = as_text(value)
        if text:
            labels[label_name(prefix, name)] = text
    return labels


def dimension_pairs(nodes: Iterable[Node]) -> Iterator[tuple[str, object]]:
    """The (name, value) pairs of Azure's `[{"name": ..., "value": ...}]` dimension arrays."""
    for node in nodes:
        name = node.text("name")
        if name:
            yield name, node.raw("value")


def custom_labels(*nodes: Node) -> dict[str, str]:
    """The `custom_*` labels of custom-property objects; later objects win on clashes."""
    labels: dict[str, str] = {}
    for node in nodes:
        labels.update(prefixed_labels("custom_", node.data.items()))
    return labels


def arm_labels(resource_id: str) -> dict[str, str]:
    """`subscription`, `resource_group`, `resource_type` and `resource` of an ARM resource ID.

    Lower-cased, because Azure is case-insensitive here and its payloads disagree on case
    (`Microsoft.Storage/storageAccounts` in one, `microsoft.storage/storageaccounts` in the
    next) — routes must see one spelling.
    """
    parts = [p for p in resource_id.strip().split("/") if p]
    lowered = [p.lower() for p in parts]
    labels: dict[str, str] = {}
    pairs = dict(zip(lowered[0::2], parts[1::2], strict=False))
    if "subscriptions" in pairs:
        labels["subscription"] = pairs["subscriptions"].lower()
    if "resourcegroups" in pairs:
        labels["resource_group"] = pairs["resourcegroups"].lower()
    if "providers" in lowered:
        rest = parts[lowered.index("providers") + 1 :]
        # namespace / type / name [/ child type / child name ...]
        if len(rest) >= 3:
            types = [rest[0], *rest[1::2]]
            labels["resource_type"] = "/".join(types).lower()
            labels["resource"] = rest[-1].lower() if len(rest) % 2 == 1 else ""
    return {k: v for k, v in labels.items() if v}


def portal_link(resource_id: str) -> str:
    """The Azure portal page of an ARM resource, or "" for anything that is not an ARM ID."""
    if not resource_id.lower().startswith("/subscriptions/"):
        return ""
    return f"https://portal.azure.com/#resource{resource_id}"


def severity_label(value: object) -> str:
    """Azure's severity as `Sev0`..`Sev4`, from `Sev3`, `3` or a legacy word; "" if unknown.

    The words follow the portal's naming: Sev0 Critical, Sev1 Error, Sev2 Warning,
    Sev3 Informational, Sev4 Verbose.
    """
    text = as_text(value).strip().lower()
    text = text.removeprefix("sev")
    if text in {"0", "1", "2", "3", "4"}:
        return f"Sev{text}"
    return _SEVERITY_WORDS.get(text, "")


_SEVERITY_WORDS = {
    "critical": "Sev0",
    "error": "Sev1",
    "warning": "Sev2",
    "informational": "Sev3",
    "verbose": "Sev4",
}


def compact(values: Mapping[str, str]) -> dict[str, str]:
    """The entries of `values` whose value is not empty."""
    return {k: v for k, v in values.items() if v}
