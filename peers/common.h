/*
 * What ttcp_ref and roundtrip_ref share: error reporting, the command line's numbers
 * and usage message, and the blocking socket helpers (bind or listen, connect, send).
 * Each program defines `peer_name`, the prefix of every line it writes to stderr.
 */
#ifndef PEERS_COMMON_H
#define PEERS_COMMON_H

#include <stddef.h>

extern const char peer_name[];

/* Print "NAME: ..." on stderr; return -1 so callers can `return fail(...)`. */
int fail(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Print "NAME: why" (unless NULL) and the usage text on stderr; return 2 (exit status). */
int usage_error(const char *why, const char *text);

/* A decimal number in [low, high]; *ok = 0 if it is not one (the value is then meaningless). */
long parse_number(const char *text, long low, long high, int *ok);

/* A socket of `type` bound to bind_addr (or to :: dual-stack, else 0.0.0.0) and port,
 * listening if it is SOCK_STREAM; -1 when none could be (reported as "cannot VERB ..."). */
int bound_socket(const char *bind_addr, const char *port, int type, const char *verb);

/* The port a bound socket has (useful after port 0), -1 on error. */
int local_port(int fd);

/* A socket of `type` connected to host:port (every address tried), -1 (reported). */
int connect_to(const char *host, const char *port, int type);

/* Send all `size` bytes (EINTR retried, no SIGPIPE): 0, or -1 with errno set. */
int send_all(int fd, const void *data, size_t size);

#endif
