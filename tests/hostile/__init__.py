"""Hostile tests, one file per attack class, each through the real CLI with real sockets."""
