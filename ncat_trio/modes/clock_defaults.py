"""Clock-mode defaults, importable without Trio (the CLI's help text needs them at start-up)."""

PROTOCOLS = ("roundtrip", "ntp")
#: muduo's roundtrip programs have no default port; ours sits next to NTP's stand-in.
ROUNDTRIP_PORT = 12124
#: 123 needs root to bind: ``clock serve --proto ntp`` defaults to this unprivileged port.
NTP_SERVE_PORT = 12123
#: ...while ``clock probe --proto ntp`` defaults to the real NTP port of real servers.
NTP_PORT = 123
