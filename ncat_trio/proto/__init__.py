"""Sans-I/O wire formats: bytes in, events out; no trio, sockets, clocks or OS calls."""
