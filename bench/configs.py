"""The two servers' configurations, equivalent by construction.

Both get the reference method's tree: a root route with 50 child routes (one per team), a
webhook receiver pointing at the bench's sink, `group_wait: 0s`, `group_interval: 5m`.
`group_by` is [alertname, team] (500 groups) for throughput and memory, and [instance]
(every alert its own group) for notification latency.
"""

from __future__ import annotations

from bench.alerts import TEAMS

INGEST_GROUP_BY = "[alertname, team]"
LATENCY_GROUP_BY = "[instance]"

TOKEN = "bench-alertmanager-token"
ADMIN_TOKEN = "bench-admin-token"
SECRET = "bench-webhook-secret"


def _child_routes(indent: str) -> str:
    return "".join(
        f"{indent}- matchers: ['team=\"team-{team}\"']\n{indent}  receiver: sink\n"
        for team in range(TEAMS)
    )


def alertmanager_config(sink_url: str, group_by: str) -> str:
    """alertmanager.yml for a single node posting to the sink."""
    return f"""route:
  receiver: sink
  group_by: {group_by}
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
  routes:
{_child_routes("    ")}
receivers:
  - name: sink
    webhook_configs:
      - url: {sink_url}
        send_resolved: false
"""


def pagerd_config(sink_url: str, group_by: str, intake_processes: int = 0,
                  intake_port: int | None = None) -> str:
    """pagerd.yml with a signed webhook receiver posting to the sink."""
    intake = (f"\n  intake_processes: {intake_processes}"
              f"\n  intake_listen: 127.0.0.1:{intake_port}" if intake_processes else "")
    return f"""server:
  admin_token: {ADMIN_TOKEN}{intake}
integrations:
  alertmanager:
    type: alertmanager
    token: {TOKEN}
components:
  - name: platform
    team: sre
route:
  receiver: sink
  group_by: {group_by}
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
  owner: platform
  routes:
{_child_routes("    ")}
receivers:
  - name: sink
    webhook_configs:
      - url: {sink_url}
        secret: {SECRET}
        timeout: 5s
        send_resolved: false
"""
