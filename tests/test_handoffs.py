"""Handoff notices: the incoming person is told once per shift, and a failed notice is
tried again."""

from __future__ import annotations

from pathlib import Path

from pagerd.daemon import handoffs

from helpers import ADMIN, running_daemon, sink_server


def config(hook: str) -> str:
    return f"""
server:
  admin_token: {ADMIN}
users:
  - name: alice
    contacts: {{webhook: "{hook}"}}
  - name: bob
    contacts: {{webhook: "{hook}"}}
schedules:
  - name: hourly
    time_zone: UTC
    layers:
      - participants: [alice, bob]
        shift_length: 1h
        start: 2026-01-05
        handoff: "00:00"
route:
  receiver: pager
receivers:
  - name: pager
"""


async def test_incoming_person_told_once(tmp_path: Path) -> None:
    async with sink_server() as hook, running_daemon(tmp_path, config(hook.url)) as (
        daemon, _, __
    ):
        assert await handoffs.announce(daemon) == 1
        assert await handoffs.announce(daemon) == 0  # once per shift, restarts included
        (notice,) = await hook.wait_for(1)
        title = notice["json"]["incidents"][0]["title"]
        assert title.startswith("You are on call for hourly from ")


async def test_failed_notice_is_tried_again(tmp_path: Path) -> None:
    async with sink_server() as hook, running_daemon(tmp_path, config(hook.url)) as (
        daemon, _, __
    ):
        hook.failures = [500, 500, 500]  # the webhook's quick retries all fail
        assert await handoffs.announce(daemon) == 0
        assert await handoffs.announce(daemon) == 1
