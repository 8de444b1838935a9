"""Durable state: alerts, incidents, timelines and timers (SQLite; Redis for replicas)."""
