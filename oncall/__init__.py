"""On-call: schedules, rotations, overrides and escalation policies."""
