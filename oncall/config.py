"""Reading on-call config: the `users`, `teams`, `schedules` and `escalation_policies` sections.

Every name is declared before any reference is checked, so sections may refer to each other
in any order. A config with any problem is refused whole, every problem listed with its
file:line; coverage gaps are only warned about, since a gap may be intended (a business-hours
schedule) and the config must still load. See docs/oncall.md for the shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pagerd.durations import format_duration
from pagerd.errors import ConfigError, ConfigErrors
from pagerd.oncall import config_fields as fields
from pagerd.oncall.config_reader import Reader
from pagerd.oncall.config_schedules import read_schedule
from pagerd.oncall.directory import OnCall
from pagerd.oncall.policy import EscalationPolicy, EscalationStep, Target, TargetKind
from pagerd.oncall.schedule import Schedule
from pagerd.oncall.users import ContactMethod, Contacts, NotificationRule, Team, User
from pagerd.yamlsource import Position, SourceDict, SourceList, position

SECTIONS = {
    "users": "user",
    "teams": "team",
    "schedules": "schedule",
    "escalation_policies": "escalation policy",
}
USER_KEYS = ("name", "time_zone", "contacts", "notification_rules", "api_token_sha256")
CONTACT_KEYS = tuple(method.value for method in ContactMethod)
RULE_KEYS = ("method", "after")
TEAM_KEYS = ("name", "members", "schedule")
POLICY_KEYS = ("name", "steps", "repeat", "ack_timeout", "fallback")
STEP_KEYS = ("targets", "delay", "remind_lead")
TARGET_FORMS = "{user: NAME}, {schedule: NAME}, {team: NAME} or {policy: NAME}"

T = TypeVar("T")
Declared = dict[str, dict[str, SourceDict]]


def parse_oncall(
    doc: SourceDict | None, *, now: datetime | None = None, gap_weeks: int = 4
) -> OnCall:
    """The on-call directory of config `doc`; ConfigErrors listing every problem if bad.

    `doc` is the whole config as `pagerd.yamlsource.load` returns it (None for an empty
    file); only the four on-call sections are read. With `now`, each schedule's coverage over
    the `gap_weeks` weeks from `now` is checked and every gap becomes a warning in the result
    (nothing reads a clock here).
    """
    if doc is not None and not isinstance(doc, SourceDict):
        # Plain dicts have no lines to report; refusing them beats ignoring their sections.
        raise TypeError("parse_oncall needs the positioned YAML of pagerd.yamlsource.load")
    reader = Reader()
    declared = {key: _declare(reader, doc, key, what) for key, what in SECTIONS.items()}
    users = _build(declared["users"], lambda name, node: _user(reader, name, node))
    teams = _build(declared["teams"], lambda name, node: _team(reader, name, node, declared))
    schedules = _build(
        declared["schedules"],
        lambda name, node: read_schedule(reader, name, node, declared["users"]),
    )
    handovers: dict[str, list[tuple[str, Position]]] = {}
    policies = _build(
        declared["escalation_policies"],
        lambda name, node: _policy(reader, name, node, declared, handovers),
    )
    _refuse_handover_loops(reader, handovers)
    if reader.errors:
        raise ConfigErrors(reader.errors)
    warnings: tuple[ConfigError, ...] = ()
    if now is not None:
        warnings = coverage_warnings(schedules, declared["schedules"], now, gap_weeks)
    return OnCall(users, teams, schedules, policies, warnings)


def coverage_warnings(
    schedules: Mapping[str, Schedule],
    nodes: Mapping[str, SourceDict],
    now: datetime,
    weeks: int,
) -> tuple[ConfigError, ...]:
    """A warning for each schedule that has nobody on call at some instant of the next weeks."""
    warnings = []
    end = now + timedelta(weeks=weeks)
    for name, schedule in schedules.items():
        gaps = schedule.coverage_gaps(now, end)
        if not gaps:
            continue
        total = sum((high - low for low, high in gaps), timedelta(0))
        low, high = (moment.astimezone(schedule.time_zone) for moment in gaps[0])
        reason = (
            f"schedule {name!r} has nobody on call for {format_duration(total.total_seconds())}"
            f" of the next {weeks} weeks, in {len(gaps)} gap(s); the first from"
            f" {low:%Y-%m-%d %H:%M} to {high:%Y-%m-%d %H:%M} {schedule.time_zone.key}"
        )
        warnings.append(ConfigError(position(nodes[name], "name"), reason))
    return tuple(warnings)


def _declare(reader: Reader, doc: Any, key: str, what: str) -> dict[str, SourceDict]:
    """The items of section `key` by name; a duplicate name is refused and skipped."""
    found: dict[str, SourceDict] = {}
    for items, index in reader.mappings(doc, key, what):
        node = items[index]
        name = reader.need(node, "name", fields.name)
        if name is None:
            continue
        if name in found:
            first = position(found[name], "name")
            reader.error(node, "name", f"duplicate {what} name {name!r} (first at {first})")
            continue
        found[name] = node
    return found


def _build(
    nodes: Mapping[str, SourceDict], read: Callable[[str, SourceDict], T | None]
) -> dict[str, T]:
    built = {name: read(name, node) for name, node in nodes.items()}
    return {name: value for name, value in built.items() if value is not None}


def _user(reader: Reader, name: str, node: SourceDict) -> User | None:
    mark = reader.mark()
    reader.known(node, USER_KEYS)
    zone = reader.get(node, "time_zone", fields.zone, ZoneInfo("UTC"))
    contacts = _contacts(reader, node)
    rules = []
    for items, index in reader.mappings(node, "notification_rules", "notification rule"):
        rule = _rule(reader, items[index], contacts)
        if rule is not None:
            rules.append(rule)
    token_hash = reader.get(node, "api_token_sha256", fields.sha256_hex, None)
    if reader.failed_since(mark):
        return None
    return User(name, zone, contacts, tuple(rules), token_hash)


def _contacts(reader: Reader, user: SourceDict) -> Contacts:
    node = user.get("contacts")
    if node is None:
        return Contacts()
    if not isinstance(node, SourceDict):
        reader.error(user, "contacts", "contacts: must be a mapping of sms, voice, email, webhook")
        return Contacts()
    reader.known(node, CONTACT_KEYS)
    return Contacts(
        sms=reader.get(node, "sms", fields.phone, None),
        voice=reader.get(node, "voice", fields.phone, None),
        email=reader.get(node, "email", fields.email, None),
        webhook=reader.get(node, "webhook", fields.url, None),
    )


def _rule(reader: Reader, node: SourceDict, contacts: Contacts) -> NotificationRule | None:
    reader.known(node, RULE_KEYS)
    method = reader.need(node, "method", _method)
    after = reader.get(node, "after", fields.delay, timedelta(0))
    if method is None:
        return None
    if contacts.address(method) is None:
        reader.error(node, "method", f"method: {method} needs contacts.{method}")
        return None
    return NotificationRule(method, int(after.total_seconds()))


def _method(value: Any) -> ContactMethod:
    try:
        return ContactMethod(value)
    except ValueError:
        choices = ", ".join(m.value for m in ContactMethod)
        raise ValueError(f"{value!r} is not one of {choices}") from None


def _team(reader: Reader, name: str, node: SourceDict, declared: Declared) -> Team | None:
    mark = reader.mark()
    reader.known(node, TEAM_KEYS)
    members: list[str] = reader.get(node, "members", fields.names, [])
    for index, member in enumerate(members):
        if member not in declared["users"]:
            reader.error(node["members"], index, f"unknown user {member!r}")
    schedule = reader.get(node, "schedule", fields.name, None)
    if schedule is not None and schedule not in declared["schedules"]:
        reader.error(node, "schedule", f"schedule: unknown schedule {schedule!r}")
    if reader.failed_since(mark):
        return None
    return Team(name, tuple(members), schedule)


def _policy(
    reader: Reader,
    name: str,
    node: SourceDict,
    declared: Declared,
    handovers: dict[str, list[tuple[str, Position]]],
) -> EscalationPolicy | None:
    mark = reader.mark()
    reader.known(node, POLICY_KEYS)
    steps = []
    for items, index in reader.mappings(node, "steps", "step"):
        step = _step(reader, items[index], declared)
        if step is not None:
            steps.append(step)
    if not node.get("steps"):
        reader.error(node, "steps" if "steps" in node else "name", "a policy needs a step")
    repeat = reader.get(node, "repeat", fields.count, 0)
    ack_timeout = reader.get(node, "ack_timeout", _positive_delay, None)
    fallback = None
    if "fallback" in node:
        fallback = _target(reader, node, "fallback", declared, allow_policy=False)
    handovers[name] = _handover_targets(node, declared)
    if reader.failed_since(mark):
        return None
    return EscalationPolicy(name, tuple(steps), repeat, ack_timeout, fallback)


def _positive_delay(value: Any) -> timedelta:
    span = fields.delay(value)
    if span <= timedelta(0):
        raise ValueError("must be longer than zero")
    return span


def _step(reader: Reader, node: SourceDict, declared: Declared) -> EscalationStep | None:
    mark = reader.mark()
    reader.known(node, STEP_KEYS)
    delay = reader.need(node, "delay", fields.whole_minutes)
    targets = []
    items = node.get("targets")
    if isinstance(items, SourceList) and items:
        for index in range(len(items)):
            target = _target(reader, items, index, declared, allow_policy=True)
            if target is not None:
                targets.append(target)
    else:
        reader.error(node, "targets", f"targets: a step needs a list of targets, {TARGET_FORMS}")
    if sum(target.kind is TargetKind.POLICY for target in targets) > 1:
        reader.error(node, "targets", "targets: a step hands over to one policy at most")
    remind = reader.get(node, "remind_lead", fields.text, None)
    if reader.failed_since(mark) or delay is None:
        return None
    return EscalationStep(tuple(targets), delay, remind)


def _target(
    reader: Reader, container: Any, key: str | int, declared: Declared, *, allow_policy: bool
) -> Target | None:
    node = container[key]
    if not isinstance(node, SourceDict) or len(node) != 1:
        reader.error(container, key, f"a target is one of {TARGET_FORMS}")
        return None
    ((kind_text, value),) = node.items()
    if kind_text == TargetKind.POLICY and not allow_policy:
        reader.error(node, kind_text, "a fallback is a user, a schedule or a team, not a policy")
        return None
    if kind_text not in set(TargetKind):
        reader.error(node, kind_text, f"{kind_text!r} is not a target kind; use {TARGET_FORMS}")
        return None
    kind = TargetKind(kind_text)
    section = {"user": "users", "schedule": "schedules", "team": "teams"}.get(
        kind_text, "escalation_policies"
    )
    if not isinstance(value, str) or value not in declared[section]:
        reader.error(node, kind_text, f"unknown {kind.value} {value!r}")
        return None
    if kind is TargetKind.TEAM and "schedule" not in declared["teams"][value]:
        reader.error(node, kind_text, f"team {value!r} has no schedule to page")
        return None
    return Target(kind, value)


def _handover_targets(node: SourceDict, declared: Declared) -> list[tuple[str, Position]]:
    """Each known policy that `node`'s steps hand over to, with where it is named."""
    found = []
    steps = node.get("steps")
    for step in steps if isinstance(steps, SourceList) else []:
        targets = step.get("targets") if isinstance(step, SourceDict) else None
        for target in targets if isinstance(targets, SourceList) else []:
            if isinstance(target, SourceDict) and "policy" in target:
                name = target["policy"]
                if isinstance(name, str) and name in declared["escalation_policies"]:
                    found.append((name, position(target, "policy")))
    return found


def _refuse_handover_loops(
    reader: Reader, handovers: Mapping[str, list[tuple[str, Position]]]
) -> None:
    """Refuse every hand-over that closes a loop, naming the loop, at the line that closes it."""
    done: set[str] = set()
    path: list[str] = []

    def visit(policy: str) -> None:
        path.append(policy)
        for target, pos in handovers.get(policy, []):
            if target in path:
                loop = " -> ".join([*path[path.index(target) :], target])
                reader.error_at(pos, f"hand-over loop: {loop}")
            elif target not in done:
                visit(target)
        path.pop()
        done.add(policy)

    for policy in handovers:
        if policy not in done:
            visit(policy)
