"""A TLS 1.3 peer that sends a KeyUpdate *after* the other side's close_notify.

Python's ``ssl`` module cannot send a KeyUpdate, so this drives the same libssl that
Python links, through ctypes.  Run as a script (one connection, blocking):

    python -m tests.tls_keyupdate_peer server CERT KEY MODE REPLY_BYTES
    python -m tests.tls_keyupdate_peer client PORT MODE REPLY_BYTES

It prints its port first (server), reads everything until the other side's
close_notify, then sends ``SSL_key_update(MODE)`` (0: update_not_requested,
1: update_requested, which asks the other side for a KeyUpdate of its own although it
has already closed its sending side), then REPLY_BYTES of a known pattern, then its
own close_notify.  Its last stdout line is ``got SHA256 TLSVERSION``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import socket
import sys

TLS1_3_VERSION = 0x0304
SSL_FILETYPE_PEM = 1
SSL_ERROR_ZERO_RETURN = 6  # the peer's close_notify
SSL_KEY_UPDATE_NONE = -1  # no KeyUpdate pending (any scheduled one has been sent)


def reply(nbytes: int) -> bytes:
    """The bytes the peer sends after the KeyUpdate."""
    pattern = bytes(range(256))
    return (pattern * (nbytes // 256 + 1))[:nbytes]


def _libssl() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("ssl") or "libssl.so.3")
    void_p, int_, char_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    signatures: list[tuple[str, type, list[type]]] = [
        ("TLS_server_method", void_p, []),
        ("TLS_client_method", void_p, []),
        ("SSL_CTX_new", void_p, [void_p]),
        ("SSL_CTX_use_certificate_chain_file", int_, [void_p, char_p]),
        ("SSL_CTX_use_PrivateKey_file", int_, [void_p, char_p, int_]),
        ("SSL_new", void_p, [void_p]),
        ("SSL_set_fd", int_, [void_p, int_]),
        ("SSL_accept", int_, [void_p]),
        ("SSL_connect", int_, [void_p]),
        ("SSL_read", int_, [void_p, char_p, int_]),
        ("SSL_write", int_, [void_p, char_p, int_]),
        ("SSL_key_update", int_, [void_p, int_]),
        ("SSL_shutdown", int_, [void_p]),
        ("SSL_get_error", int_, [void_p, int_]),
        ("SSL_version", int_, [void_p]),
        ("SSL_get_key_update_type", int_, [void_p]),
    ]
    for name, restype, argtypes in signatures:
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


def main(argv: list[str]) -> int:
    role = argv[0]
    lib = _libssl()
    if role == "server":
        cert, key, mode, nbytes = argv[1], argv[2], int(argv[3]), int(argv[4])
        ctx = lib.SSL_CTX_new(lib.TLS_server_method())
        if lib.SSL_CTX_use_certificate_chain_file(ctx, cert.encode()) != 1:
            raise SystemExit("cannot load the certificate")
        if lib.SSL_CTX_use_PrivateKey_file(ctx, key.encode(), SSL_FILETYPE_PEM) != 1:
            raise SystemExit("cannot load the key")
        listener = socket.create_server(("127.0.0.1", 0))
        print(listener.getsockname()[1], flush=True)
        conn, _ = listener.accept()
        listener.close()
        ssl = lib.SSL_new(ctx)
        lib.SSL_set_fd(ssl, conn.fileno())
        if lib.SSL_accept(ssl) != 1:
            raise SystemExit("handshake failed")
    else:
        port, mode, nbytes = int(argv[1]), int(argv[2]), int(argv[3])
        ctx = lib.SSL_CTX_new(lib.TLS_client_method())  # no verification: not under test
        conn = socket.create_connection(("127.0.0.1", port))
        ssl = lib.SSL_new(ctx)
        lib.SSL_set_fd(ssl, conn.fileno())
        if lib.SSL_connect(ssl) != 1:
            raise SystemExit("handshake failed")
    digest = hashlib.sha256()
    buffer = ctypes.create_string_buffer(1 << 16)
    while True:
        n = lib.SSL_read(ssl, buffer, len(buffer))
        if n <= 0:
            error = lib.SSL_get_error(ssl, n)
            if error != SSL_ERROR_ZERO_RETURN:
                raise SystemExit(f"SSL_read failed before close_notify: error {error}")
            break
        digest.update(buffer.raw[:n])
    if lib.SSL_key_update(ssl, mode) != 1 or lib.SSL_get_key_update_type(ssl) != mode:
        raise SystemExit("SSL_key_update refused")
    data = reply(nbytes)
    view = memoryview(data)
    while view:  # the KeyUpdate goes out with the first write
        n = lib.SSL_write(ssl, bytes(view[: 1 << 16]), min(len(view), 1 << 16))
        if n <= 0:
            raise SystemExit(f"SSL_write failed: error {lib.SSL_get_error(ssl, n)}")
        if lib.SSL_get_key_update_type(ssl) != SSL_KEY_UPDATE_NONE:
            raise SystemExit("the KeyUpdate did not go out with the first write")
        view = view[n:]
    lib.SSL_shutdown(ssl)
    print(f"got {digest.hexdigest()} {lib.SSL_version(ssl):#06x}", flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
