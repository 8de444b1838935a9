"""The daemon: application wiring, HTTP server and process lifecycle."""
