"""Notifiers: the ways pagerd delivers a notification to a receiver."""
