"""pagerd's benchmark against Alertmanager: run by hand with `python -m bench.run`."""
