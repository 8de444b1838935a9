"""The default configuration pagerd runs with, shipped as package data (`pagerd.defaults`)."""
