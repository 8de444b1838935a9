"""Inhibition: a firing source alert mutes target alerts that share its `equal` labels.

A rule inhibits an alert matching its target side when some other firing alert matches its
source side and has the same values (a missing label is the empty value) for every `equal`
label. As in Alertmanager, an alert matching both sides is not inhibited by a source alert
that also matches both sides, so an alert never inhibits itself and two such alerts do not
inhibit each other.

The `Inhibitor` keeps, per rule, only the firing alerts that match the rule's source side,
indexed by their `equal` values, so a check costs a few dictionary look-ups per rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pagerd.routing.matchers import LabelTest, Matcher, cheapest_first, passes


@dataclass(frozen=True)
class InhibitRule:
    """One `inhibit_rules` entry: source and target matchers and the `equal` label names."""

    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()
    name: str = ""
    # Both sides in the order to test them (see `cheapest_first`).
    _source_checks: tuple[LabelTest, ...] = field(init=False, repr=False, compare=False)
    _target_checks: tuple[LabelTest, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_source_checks", cheapest_first(self.source_matchers))
        object.__setattr__(self, "_target_checks", cheapest_first(self.target_matchers))

    def equal_key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """The values of the `equal` labels of an alert; source and target must agree."""
        return tuple(labels.get(name, "") for name in self.equal)

    def is_source(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with `labels` matches the source side."""
        return passes(self._source_checks, labels)

    def is_target(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with `labels` matches the target side."""
        return passes(self._target_checks, labels)


@dataclass
class _Bucket:
    """The firing source alerts of one rule with one set of `equal` values, split by
    whether they also match the target side (those cannot inhibit a two-sided target)."""

    one_sided: dict[str, None] = field(default_factory=dict)
    two_sided: dict[str, None] = field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    """Where one source alert sits in the index, so an update or resolve can remove it."""

    rule: int
    key: tuple[str, ...]
    two_sided: bool


class Inhibitor:
    """The firing source alerts of a set of rules, and the inhibition check against them.

    Feed it every alert change with `observe`; ask `is_inhibited`. It is not thread-safe:
    use it from one event loop. On a config reload, build a new one and observe the firing
    alerts again (the old one kept only the sources of the old rules).
    """

    def __init__(self, rules: Sequence[InhibitRule]) -> None:
        self.rules = tuple(rules)
        self._index: list[dict[tuple[str, ...], _Bucket]] = [{} for _ in self.rules]
        self._entries: dict[str, list[_Entry]] = {}

    def __len__(self) -> int:
        """The number of firing alerts indexed as a source of some rule."""
        return len(self._entries)

    def observe(self, fingerprint: str, labels: Mapping[str, str], firing: bool) -> None:
        """Record that the alert `fingerprint` is now firing with `labels`, or resolved."""
        if not self.rules:
            return
        self._forget(fingerprint)
        if not firing:
            return
        entries = []
        for number, rule in enumerate(self.rules):
            if not rule.is_source(labels):
                continue
            entry = _Entry(number, rule.equal_key(labels), rule.is_target(labels))
            bucket = self._index[number].setdefault(entry.key, _Bucket())
            (bucket.two_sided if entry.two_sided else bucket.one_sided)[fingerprint] = None
            entries.append(entry)
        if entries:
            self._entries[fingerprint] = entries

    def _forget(self, fingerprint: str) -> None:
        for entry in self._entries.pop(fingerprint, ()):
            buckets = self._index[entry.rule]
            bucket = buckets[entry.key]
            (bucket.two_sided if entry.two_sided else bucket.one_sided).pop(fingerprint, None)
            if not bucket.one_sided and not bucket.two_sided:
                del buckets[entry.key]

    def inhibited_by(self, fingerprint: str, labels: Mapping[str, str]) -> str | None:
        """The fingerprint of a firing alert that inhibits this one, or None."""
        for number, rule in enumerate(self.rules):
            if not self._index[number] or not rule.is_target(labels):
                continue
            bucket = self._index[number].get(rule.equal_key(labels))
            if bucket is None:
                continue
            source = _first_other(bucket.one_sided, fingerprint)
            # A target that also matches the source side is only inhibited by a source
            # that does not match the target side (Alertmanager's two-sided exclusion).
            if source is None and not rule.is_source(labels):
                source = _first_other(bucket.two_sided, fingerprint)
            if source is not None:
                return source
        return None

    def is_inhibited(self, fingerprint: str, labels: Mapping[str, str]) -> bool:
        """Whether the alert `fingerprint` with `labels` is inhibited by a firing alert."""
        return self.inhibited_by(fingerprint, labels) is not None


def _first_other(fingerprints: dict[str, None], own: str) -> str | None:
    """A fingerprint of `fingerprints` other than `own` (an alert never inhibits itself)."""
    for fingerprint in fingerprints:
        if fingerprint != own:
            return fingerprint
    return None
