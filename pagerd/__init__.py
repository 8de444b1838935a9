"""pagerd: alert routing and on-call paging daemon."""

__version__ = "0.1.0"
