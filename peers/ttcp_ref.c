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
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* The largest payload the receiver will allocate for (a hostile session message
 * must not make it allocate gigabytes). */
#define MAX_LENGTH (64 * 1024 * 1024)

static const char PATTERN[] = "0123456789ABCDEF";

const char peer_name[] = "ttcp_ref";

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
    if (send_all(fd, buffer, size) != 0)
        return fail("sending %s: %s", what, strerror(errno));
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
    int listener = bound_socket(bind_addr, port, SOCK_STREAM, "listen on");
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

static int run_transmitter(const char *host, const char *port, int32_t length, int32_t number,
                           int nodelay)
{
    printf("port = %s\nbuffer length = %d\nnumber of buffers = %d\n", port, length, number);
    fflush(stdout);
    int fd = connect_to(host, port, SOCK_STREAM);
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
    return usage_error(why, "usage: ttcp_ref -r [-p PORT] [-k] [-b BIND_ADDR]\n"
                            "       ttcp_ref -t HOST [-p PORT] [-l LENGTH] [-n NUMBER] [-D]\n");
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
        case 'p': port = optarg; parse_number(optarg, 0, 65535, &ok); break;
        case 'l': length = (int32_t)parse_number(optarg, 0, MAX_LENGTH, &ok); break;
        case 'n': number = (int32_t)parse_number(optarg, 0, INT32_MAX, &ok); break;
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
