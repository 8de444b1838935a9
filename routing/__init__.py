"""The routing tree: matchers, routes, inhibition, time intervals, grouping."""
