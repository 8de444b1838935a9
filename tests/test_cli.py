"""The pagerd command: check, routes test, incidents."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pagerd.cli import main
from pagerd.models import Alert, AlertStatus
from pagerd.store.base import IngestBatch, IngestItem, RouteTarget
from pagerd.store.sqlite import SQLiteStore

from helpers import config_text

ROUTES = """    - matchers: ['team="db"']
      owner: db
      severity: SEV2
      continue: true
    - matchers: ['alertname=~"Disk.*"']
      group_by: [instance]
"""


def test_check_accepts_the_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    config = Path(__file__).parent.parent / "config" / "pagerd.yml"
    assert main(["check", str(config)]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize(("mutation", "line", "reason"), [
    (("owner: platform", "owner: nobody"), 16, "owner"),
    (("timeout: 2s", "timeout: soon"), 26, "duration"),
    (("group_by: [alertname]", "group_by: [alertname, alertname]"), 15, "duplicate"),
    (("receiver: hook\n", "receiver: hooks\n"), 14, "hooks"),
])
def test_check_names_file_line_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutation: tuple[str, str], line: int,
    reason: str,
) -> None:
    file = tmp_path / "bad.yml"
    file.write_text(config_text("http://127.0.0.1:1/hook").replace(*mutation, 1))
    assert main(["check", str(file)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert any(e.startswith(f"{file}:{line}: ") and reason in e for e in err), err


def test_check_refuses_broken_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "bad.yml"
    file.write_text("route:\n  receiver: [unclosed\n")
    assert main(["check", str(file)]) == 1
    assert capsys.readouterr().err.startswith(f"{file}:")


def test_routes_test_lists_every_matched_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "pagerd.yml"
    file.write_text(config_text("http://127.0.0.1:1/hook", ROUTES))
    assert main(["routes", "test", "--config", str(file), "alertname=DiskFull", "team=db",
                 "instance=db1", "severity=critical"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert "owner=db" in lines[0] and "severity=SEV2" in lines[0]
    assert "severity=SEV1" in lines[1] and 'group_key=' in lines[1] and "db1" in lines[1]


def test_incidents_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"

    async def seed() -> None:
        store = SQLiteStore(state / "pagerd.db")
        await store.open()
        alert = Alert("0123456789abcdef", AlertStatus.FIRING, {"alertname": "Down"},
                      integration="alertmanager")
        target = RouteTarget("r:{}", "r", "hook", {}, "SEV2", 1, "platform", None, True, 0, 300)
        await store.ingest(IngestBatch([IngestItem(alert, [target])], "alertmanager"), 1e9)
        await store.close()

    asyncio.run(seed())
    assert main(["incidents", "--json", "--state-dir", str(state)]) == 0
    (incident,) = json.loads(capsys.readouterr().out)
    assert incident["id"] == 1 and incident["state"] == "triggered"
    assert incident["severity"] == "SEV2" and incident["owner"] == "platform"
    (alert,) = incident["alerts"]
    assert alert["fingerprint"] == "0123456789abcdef" and alert["status"] == "firing"
    assert alert["labels"] == {"alertname": "Down"}
    assert [entry["kind"] for entry in incident["timeline"]] == ["incident.opened",
                                                                  "alert.firing"]


def test_incidents_on_empty_state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["incidents", "--json", "--state-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_check_warns_of_routes_paging_nobody_and_coverage_gaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "pagerd.yml"
    text = config_text("http://127.0.0.1:1/hook") + """
users:
  - name: ann
schedules:
  - name: business
    time_zone: UTC
    layers:
      - participants: [ann]
        shift_length: 1d
        start: 2026-01-05
        handoff: "09:00"
        restrictions:
          - {days: mon-fri, from: "09:00", to: "17:00"}
"""
    file.write_text(text)
    assert main(["check", str(file)]) == 0  # warnings do not refuse the config
    err = capsys.readouterr().err
    assert f"{file}:14: warning: route {{}} opens incidents" in err
    line = text.splitlines().index("  - name: business") + 1
    assert f"{file}:{line}: warning: schedule 'business' has nobody on call" in err
