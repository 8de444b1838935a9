"""Intake: HTTP payloads from monitoring systems, turned into canonical alerts."""
