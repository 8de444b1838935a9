"""Reading the `schedules` section: schedules, their layers and the layers' restrictions."""

from __future__ import annotations

from collections.abc import Container
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from pagerd.oncall import config_fields as fields
from pagerd.oncall.config_reader import Reader
from pagerd.oncall.restrictions import (
    ALL_DAYS,
    DailyRestriction,
    Restriction,
    WeeklyRestriction,
)
from pagerd.oncall.rotation import Layer, ShiftLength
from pagerd.oncall.schedule import Schedule
from pagerd.yamlsource import SourceDict, SourceList

SCHEDULE_KEYS = ("name", "time_zone", "layers")
LAYER_KEYS = (
    "name",
    "participants",
    "shift_length",
    "handoff",
    "start",
    "time_zone",
    "restrictions",
)
RESTRICTION_KEYS = ("from", "to", "days")


def read_schedule(
    reader: Reader, name: str, node: SourceDict, users: Container[str]
) -> Schedule | None:
    """The schedule `name` described by `node`, or None after recording its errors."""
    mark = reader.mark()
    reader.known(node, SCHEDULE_KEYS)
    zone = reader.need(node, "time_zone", fields.zone)
    layers: list[Layer] = []
    seen: dict[str, int] = {}
    for items, index in reader.mappings(node, "layers", "layer"):
        layer = _layer(reader, items[index], index, zone or ZoneInfo("UTC"), users)
        if layer is None:
            continue
        if layer.name in seen:
            reader.error(items[index], "name", f"duplicate layer name {layer.name!r}")
            continue
        seen[layer.name] = index
        layers.append(layer)
    if not node.get("layers"):
        reader.error(node, "layers" if "layers" in node else "name", "a schedule needs a layer")
    if reader.failed_since(mark) or zone is None:
        return None
    return Schedule(name, zone, tuple(layers))


def _layer(
    reader: Reader, node: SourceDict, index: int, default_zone: ZoneInfo, users: Container[str]
) -> Layer | None:
    mark = reader.mark()
    reader.known(node, LAYER_KEYS)
    name = reader.get(node, "name", fields.name, f"layer-{index + 1}")
    participants = reader.need(node, "participants", fields.names)
    if participants is not None:
        _check_participants(reader, node, participants, users)
    length = reader.need(node, "shift_length", _shift_length)
    zone = reader.get(node, "time_zone", fields.zone, default_zone)
    first = _first_handoff(reader, node)
    restrictions = []
    for items, item in reader.mappings(node, "restrictions", "restriction"):
        restriction = _restriction(reader, items[item])
        if restriction is not None:
            restrictions.append(restriction)
    if reader.failed_since(mark) or participants is None or length is None or first is None:
        return None
    return Layer(
        name=name,
        participants=tuple(participants),
        shift_length=length,
        handoff=first[1],
        start=first[0],
        time_zone=zone,
        restrictions=tuple(restrictions),
    )


def _check_participants(
    reader: Reader, node: SourceDict, participants: list[str], users: Container[str]
) -> None:
    listed = node["participants"]
    if not participants:
        reader.error(node, "participants", "participants: a layer needs at least one person")
    for index, user in enumerate(participants):
        if user not in users:
            where = listed if isinstance(listed, SourceList) else node
            reader.error(where, index, f"unknown user {user!r}")


def _shift_length(value: Any) -> ShiftLength:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a count and one unit, as 12h, 3d or 1w")
    return ShiftLength.parse(value)


def _first_handoff(reader: Reader, node: SourceDict) -> tuple[date, time] | None:
    """The date and local time of the first handoff, from `start` and `handoff`."""
    start = reader.need(node, "start", fields.start)
    handoff = reader.get(node, "handoff", fields.clock, None)
    if isinstance(start, datetime):
        if handoff is not None and handoff != start.time():
            reader.error(
                node,
                "handoff",
                f"handoff: {handoff:%H:%M} disagrees with the time of start ({start:%H:%M})",
            )
            return None
        return start.date(), start.time()
    if start is None:
        return None
    if handoff is None:
        if "handoff" not in node:
            reader.error(node, "start", "missing field 'handoff' (or give start a time of day)")
        return None
    return start, handoff


def _restriction(reader: Reader, node: SourceDict) -> Restriction | None:
    """A daily window ("09:00" to "17:00", on `days`) or a weekly one ("fri 17:00")."""
    reader.known(node, RESTRICTION_KEYS)
    mark = reader.mark()
    if isinstance(node.get("from"), str) and len(node["from"].split()) > 1:
        begin = reader.need(node, "from", fields.day_and_clock)
        end = reader.need(node, "to", fields.day_and_clock)
        if "days" in node:
            reader.error(node, "days", "days: a weekly window names its days in from and to")
        if begin is None or end is None or reader.failed_since(mark):
            return None
        return WeeklyRestriction(begin[0], begin[1], end[0], end[1])
    start = reader.need(node, "from", fields.clock)
    finish = reader.need(node, "to", _window_end)
    days = reader.get(node, "days", fields.days, ALL_DAYS)
    if start is None or finish is None or reader.failed_since(mark):
        return None
    return DailyRestriction(start, finish, days)


def _window_end(value: Any) -> time:
    return fields.clock(value, allow_24=True)

