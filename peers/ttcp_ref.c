/*
 * ttcp_ref: a known-good peer for the ttcp throughput protocol (docs/protocols.md).
 *
 * Written for ncat-trio's interop tests and benchmarks from the protocol notes:
 * blocking POSIX sockets, IPv4 and IPv6, nothing clever, so that a disagreement
 * with ncat-trio points at ncat-trio.
 *
 *   ttcp_ref -r [-p PORT] [-k] [-b BIND_ADDR]                  receive
 *   ttcp_ref -t HOST [-p PORT] [-l LENGTH] [-n NUMBER] [-D]    transmit
 *
 * Wire: session = number:int32 length:int32; then `number` times a payload
 * (length:int32 + `length` bytes "0123456789ABCDEF"[i % 16]) answered by a 4-byte
 * ack equal to length.  Every integer is signed 32-bit big-endian.
 * Exit status: 0 done, 1 any failure (a line "ttcp_ref: ..." on stderr), 2 usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The largest payload the receiver will allocate for (a hostile session message
 * must not make it allocate gigabytes). */
#define MAX_LENGTH (64 * 1024 * 1024)

static const char PATTERN[] = "0123456789ABCDEF";

/* Print "ttcp_ref: ..." on stderr; return -1 so callers can `return fail(...)`. */
static int fail(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fputs("ttcp_ref: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    return -1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put_be32(unsigned char *out, int32_t value)
{
    uint32_t v = (uint32_t)value;
    out[0] = (unsigned char)(v >> 24);
    out[1] = (unsigned char)(v >> 16);
    out[2] = (unsigned char)(v >> 8);
    out[3] = (unsigned char)v;
}

static int32_t get_be32(const unsigned char *in)
{
    return (int32_t)(((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) |
                     ((uint32_t)in[2] << 8) | (uint32_t)in[3]);
}

/* Read exactly `size` bytes: 1 done, 0 EOF before any byte, -1 EOF midway or error. */
static int read_exact(int fd, void *buffer, size_t size, const char *what)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = recv(fd, (char *)buffer + got, size - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail("reading %s: %s", what, strerror(errno));
        }
        if (n == 0) {
            if (got == 0)
                return 0;
            return fail("EOF in the middle of %s (%zu of %zu bytes)", what, got, size);
        }
        got += (size_t)n;
    }
    return 1;
}

static int write_all(int fd, const void *buffer, size_t size, const char *what)
{
    size_t sent = 0;
    while (sent < size) {
        ssize_t n = send(fd, (const char *)buffer + sent, size - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail("sending %s: %s", what, strerror(errno));
        }
        sent += (size_t)n;
    }
    return 0;
}

static void print_result(int64_t length, int64_t number, double seconds)
{
    double mib = (double)(length * number) / 1048576.0;
    printf("%.3f MiB in total\n", mib);
    printf("%.3f seconds\n", seconds);
    printf("%.3f MiB/s\n", seconds > 0 ? mib / seconds : 0.0);
    fflush(stdout);
}

/* ---- receiver ------------------------------------------------------------------ */

/* A listening socket on bind_addr (or on :: dual-stack, else 0.0.0.0) and port. */
static int listen_on(const char *bind_addr, const char *port)
{
    struct addrinfo hints, *found, *ai;
    const char *hosts[2] = {bind_addr, NULL};
    int count = 1, i;
    if (bind_addr == NULL) {
        hosts[0] = "::";
        hosts[1] = "0.0.0.0";
        count = 2;
    }
    for (i = 0; i < count; i++) {
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        int rc = getaddrinfo(hosts[i], port, &hints, &found);
        if (rc != 0) {
            fail("%s: %s", hosts[i], gai_strerror(rc));
            continue;
        }
        for (ai = found; ai != NULL; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
            if (fd < 0)
                continue;
            int on = 1, off = 0;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
            if (ai->ai_family == AF_INET6 && bind_addr == NULL)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0) {
                freeaddrinfo(found);
                return fd;
            }
            if (bind_addr != NULL || i == count - 1)
                fail("cannot listen on %s port %s: %s", hosts[i], port, strerror(errno));
            close(fd);
        }
        freeaddrinfo(found);
    }
    return -1;
}

static int local_port(int fd)
{
    struct sockaddr_storage addr;
    socklen_t size = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &size) != 0)
        return -1;
    if (addr.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    return ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

/* One session on an accepted connection: 0 success, -1 failure (already reported). */
static int receive_session(int fd)
{
    unsigned char header[8], word[4], extra;
    if (read_exact(fd, header, sizeof header, "the session message") != 1)
        return fail("no session message");
    double start = now_seconds();
    int32_t number = get_be32(header), length = get_be32(header + 4);
    printf("receive number = %d\nreceive length = %d\n", number, length);
    fflush(stdout);
    if (number < 0)
        return fail("negative number of buffers %d", number);
    if (length < 0 || length > MAX_LENGTH)
        return fail("session length %d outside 0..%d", length, MAX_LENGTH);
    unsigned char *payload = malloc(length > 0 ? (size_t)length : 1);
    if (payload == NULL)
        return fail("out of memory for %d bytes", length);
    int status = 0;
    double end = start;
    for (int32_t i = 0; i < number && status == 0; i++) {
        if (read_exact(fd, word, sizeof word, "a payload length") != 1) {
            status = fail("connection ended after %d of %d payloads", i, number);
            break;
        }
        int32_t announced = get_be32(word);
        if (announced != length) {
            status = fail("payload %d has length %d, the session said %d", i, announced, length);
            break;
        }
        if (length > 0 && read_exact(fd, payload, (size_t)length, "a payload") != 1) {
            status = -1;
            break;
        }
        status = write_all(fd, word, sizeof word, "an ack");
        end = now_seconds();
    }
    free(payload);
    if (status != 0)
        return status;
    /* The transmitter closes after the last ack: anything else is a protocol error. */
    ssize_t n;
    do
        n = recv(fd, &extra, 1, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return fail("bytes after the last payload");
    if (n < 0)
        return fail("waiting for the transmitter to close: %s", strerror(errno));
    print_result(length, number, end - start);
    return 0;
}

static int run_receiver(const char *bind_addr, const char *port, int keep_serving)
{
    int listener = listen_on(bind_addr, port);
    if (listener < 0)
        return 1;
    printf("port = %d\n", local_port(listener));
    fflush(stdout);
    for (;;) {
        int conn = accept(listener, NULL, NULL);
        if (conn < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fail("accept: %s", strerror(errno));
            close(listener);
            return 1;
        }
        int status = receive_session(conn);
        close(conn);
        if (!keep_serving) {
            close(listener);
            return status == 0 ? 0 : 1;
        }
    }
}

/* ---- transmitter --------------------------------------------------------------- */

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints, *found, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &found);
    if (rc != 0)
        return fail("%s: %s", host, gai_strerror(rc));
    int fd = -1, error = 0;
    for (ai = found; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            error = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            error = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    if (fd < 0)
        return fail("connect to %s port %s: %s", host, port, strerror(error));
    return fd;
}

static int run_transmitter(const char *host, const char *port, int32_t length, int32_t number,
                           int nodelay)
{
    printf("port = %s\nbuffer length = %d\nnumber of buffers = %d\n", port, length, number);
    fflush(stdout);
    int fd = connect_to(host, port);
    if (fd < 0)
        return 1;
    double start = now_seconds();
    if (nodelay) {
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    unsigned char header[8], ack[4];
    put_be32(header, number);
    put_be32(header + 4, length);
    unsigned char *message = malloc(4 + (size_t)length);
    if (message == NULL) {
        fail("out of memory for %d bytes", length);
        close(fd);
        return 1;
    }
    put_be32(message, length);
    for (int32_t i = 0; i < length; i++)
        message[4 + i] = (unsigned char)PATTERN[i % 16];
    int status = write_all(fd, header, sizeof header, "the session message");
    for (int32_t i = 0; i < number && status == 0; i++) {
        status = write_all(fd, message, 4 + (size_t)length, "a payload");
        if (status != 0)
            break;
        int got = read_exact(fd, ack, sizeof ack, "an ack");
        if (got != 1) {
            status = got == 0 ? fail("connection closed before ack %d of %d", i, number) : -1;
            break;
        }
        if (get_be32(ack) != length)
            status = fail("ack %d says %d, expected %d", i, get_be32(ack), length);
    }
    free(message);
    close(fd);
    if (status != 0)
        return 1;
    print_result(length, number, now_seconds() - start);
    return 0;
}

/* ---- command line -------------------------------------------------------------- */

static int usage(const char *why)
{
    if (why != NULL)
        fprintf(stderr, "ttcp_ref: %s\n", why);
    fputs("usage: ttcp_ref -r [-p PORT] [-k] [-b BIND_ADDR]\n"
          "       ttcp_ref -t HOST [-p PORT] [-l LENGTH] [-n NUMBER] [-D]\n",
          stderr);
    return 2;
}

/* A decimal int32 in [low, high], or -1 with *ok = 0. */
static int32_t parse_int(const char *text, long low, long high, int *ok)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    *ok = errno == 0 && *text != '\0' && *end == '\0' && value >= low && value <= high;
    return *ok ? (int32_t)value : -1;
}

int main(int argc, char **argv)
{
    int receive = 0, keep_serving = 0, nodelay = 0, ok = 1, option;
    const char *host = NULL, *port = "5001", *bind_addr = NULL;
    int32_t length = 65536, number = 8192;
    while ((option = getopt(argc, argv, "rt:p:l:n:kDb:")) != -1) {
        switch (option) {
        case 'r': receive = 1; break;
        case 't': host = optarg; break;
        case 'p': port = optarg; parse_int(optarg, 0, 65535, &ok); break;
        case 'l': length = parse_int(optarg, 0, MAX_LENGTH, &ok); break;
        case 'n': number = parse_int(optarg, 0, INT32_MAX, &ok); break;
        case 'k': keep_serving = 1; break;
        case 'D': nodelay = 1; break;
        case 'b': bind_addr = optarg; break;
        default: return usage(NULL);
        }
        if (!ok)
            return usage("bad number for an option");
    }
    if (optind != argc)
        return usage("unexpected argument");
    if (receive == (host != NULL))
        return usage("give exactly one of -r and -t HOST");
    signal(SIGPIPE, SIG_IGN);
    return receive ? run_receiver(bind_addr, port, keep_serving)
                   : run_transmitter(host, port, length, number, nodelay);
}
