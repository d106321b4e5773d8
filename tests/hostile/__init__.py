"""Hostile-input tests, one file per attack class; each attacks through the real CLI
with real sockets (RELIABILITY.md, "Hostile testing")."""
