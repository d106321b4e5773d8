"""Trio byte movers: stdio streams, pumps, sockets.  Knows no wire format."""
