/*
 * roundtrip_ref: a known-good peer for muduo's roundtrip clock protocol
 * (docs/protocols.md), over UDP (default) or TCP (-T).
 *
 *   roundtrip_ref -s PORT [-b BIND_ADDR] [-T]                       server, until killed
 *   roundtrip_ref HOST PORT [-T] [-c COUNT] [-i INTERVAL_MS]        client
 *
 * A frame is 16 bytes: two little-endian int64, microseconds since the epoch
 * (CLOCK_REALTIME): the client's send time, then 0 (request) or the server's
 * receive time (reply).  The client prints, per reply,
 *   round trip R clock error E        R = back - send, E = server - (back + send) / 2
 * and at the end "probes C replies K timeouts T" and the sample with the smallest
 * round trip ("min round trip R clock error E").  Exit 0 if any reply came, else 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define FRAME 16
#define REPLY_TIMEOUT_MS 1000

const char peer_name[] = "roundtrip_ref";

/* Wall clock in µs (the protocol's timestamps) and a monotonic one for pacing. */
static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_le64(unsigned char *out, int64_t value)
{
    uint64_t v = (uint64_t)value;
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(v >> (8 * i));
}

static int64_t get_le64(const unsigned char *in)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | in[i];
    return (int64_t)v;
}

/* ---- server -------------------------------------------------------------------- */

static int serve_udp(int fd)
{
    unsigned char frame[FRAME + 1];
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t peer_size = sizeof peer;
        /* MSG_TRUNC: the datagram's real size, so an oversized one is seen and dropped. */
        ssize_t n = recvfrom(fd, frame, sizeof frame, MSG_TRUNC, (struct sockaddr *)&peer,
                             &peer_size);
        int64_t received = wall_us();
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED)
                continue;
            return fail("recvfrom: %s", strerror(errno));
        }
        if (n != FRAME) {
            fail("dropped a datagram of %zd bytes (a frame is %d)", n, FRAME);
            continue;
        }
        put_le64(frame + 8, received);
        if (sendto(fd, frame, FRAME, 0, (struct sockaddr *)&peer, peer_size) < 0)
            fail("sendto: %s", strerror(errno));
    }
}

/* One TCP client until it closes: every whole frame is stamped and sent back. */
static void serve_tcp_client(int conn)
{
    unsigned char buffer[4096];
    size_t held = 0;
    int on = 1;
    setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    for (;;) {
        ssize_t n = recv(conn, buffer + held, sizeof buffer - held, 0);
        int64_t received = wall_us();
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail("recv: %s", strerror(errno));
            return;
        }
        if (n == 0)
            return;
        held += (size_t)n;
        size_t whole = held - held % FRAME;
        for (size_t at = 0; at < whole; at += FRAME)
            put_le64(buffer + at + 8, received);
        if (whole > 0 && send_all(conn, buffer, whole) != 0) {
            fail("send: %s", strerror(errno));
            return;
        }
        memmove(buffer, buffer + whole, held - whole);
        held -= whole;
    }
}

static int serve_tcp(int listener)
{
    for (;;) {
        int conn = accept(listener, NULL, NULL);
        if (conn < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return fail("accept: %s", strerror(errno));
        }
        serve_tcp_client(conn);
        close(conn);
    }
}

static int run_server(const char *bind_addr, const char *port, int tcp)
{
    int fd = bound_socket(bind_addr, port, tcp ? SOCK_STREAM : SOCK_DGRAM, "bind");
    if (fd < 0)
        return 1;
    printf("port = %d\n", local_port(fd));
    fflush(stdout);
    return (tcp ? serve_tcp(fd) : serve_udp(fd)) == 0 ? 0 : 1;
}

/* ---- client -------------------------------------------------------------------- */

/* Wait until `deadline` (monotonic ms) for a reply to the probe sent at `sent`.
 * 1 a reply (its server time in *server, arrival in *back), 0 timeout, -1 error.
 * TCP frames may arrive split: `pending`/`held` carry a partial frame over. */
static int await_reply(int fd, int tcp, int64_t sent, int64_t deadline, int64_t *server,
                       int64_t *back, unsigned char *pending, size_t *held)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0)
            return fail("poll: %s", strerror(errno));
        if (ready == 0)
            return 0;
        unsigned char frame[FRAME + 1];
        ssize_t n;
        if (tcp) {
            n = recv(fd, pending + *held, FRAME - *held, 0);
            if (n == 0)
                return fail("the server closed the connection");
        } else {
            n = recv(fd, frame, sizeof frame, MSG_TRUNC);
        }
        int64_t arrived = wall_us();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail("recv: %s", strerror(errno));
        }
        if (tcp) {
            *held += (size_t)n;
            if (*held < FRAME)
                continue;
            memcpy(frame, pending, FRAME);
            *held = 0;
        } else if (n != FRAME) {
            fail("skipped a malformed reply of %zd bytes", n);
            continue;
        }
        int64_t echoed = get_le64(frame);
        if (echoed != sent) {
            fail("skipped a stale reply (sent at %lld, not %lld)", (long long)echoed,
                 (long long)sent);
            continue;
        }
        *server = get_le64(frame + 8);
        *back = arrived;
        return 1;
    }
}

static int run_client(const char *host, const char *port, int tcp, long count, long interval)
{
    int fd = connect_to(host, port, tcp ? SOCK_STREAM : SOCK_DGRAM);
    if (fd < 0)
        return 1;
    if (tcp) {
        int on = 1; /* a probe must not wait for Nagle */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    long probes = 0, replies = 0, timeouts = 0;
    int64_t best_rtt = 0, best_error = 0;
    unsigned char pending[FRAME];
    size_t held = 0;
    int64_t next = mono_ms();
    int status = 0;
    for (long i = 0; i < count && status == 0; i++) {
        int64_t wait = next - mono_ms();
        if (wait > 0) {
            struct timespec pause = {wait / 1000, (wait % 1000) * 1000000};
            while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
                ;
        }
        next = mono_ms() + interval;
        unsigned char frame[FRAME];
        int64_t sent = wall_us();
        put_le64(frame, sent);
        put_le64(frame + 8, 0);
        if (send_all(fd, frame, FRAME) != 0) {
            status = fail("send: %s", strerror(errno));
            break;
        }
        probes++;
        int64_t server = 0, back = 0;
        int got = await_reply(fd, tcp, sent, mono_ms() + REPLY_TIMEOUT_MS, &server, &back,
                              pending, &held);
        if (got < 0) {
            status = -1;
        } else if (got == 0) {
            timeouts++;
            printf("timeout\n");
        } else {
            int64_t rtt = back - sent, error = server - (back + sent) / 2;
            printf("round trip %lld clock error %lld\n", (long long)rtt, (long long)error);
            if (replies == 0 || rtt < best_rtt) {
                best_rtt = rtt;
                best_error = error;
            }
            replies++;
        }
        fflush(stdout);
    }
    close(fd);
    printf("probes %ld replies %ld timeouts %ld\n", probes, replies, timeouts);
    if (replies > 0)
        printf("min round trip %lld clock error %lld\n", (long long)best_rtt,
               (long long)best_error);
    fflush(stdout);
    return status == 0 && replies > 0 ? 0 : 1;
}

/* ---- command line -------------------------------------------------------------- */

static int usage(const char *why)
{
    return usage_error(why, "usage: roundtrip_ref -s PORT [-b BIND_ADDR] [-T]\n"
                            "       roundtrip_ref HOST PORT [-T] [-c COUNT] [-i INTERVAL_MS]\n");
}

int main(int argc, char **argv)
{
    const char *server_port = NULL, *bind_addr = NULL;
    int tcp = 0, ok = 1, option;
    long count = 10, interval = 200;
    while ((option = getopt(argc, argv, "s:b:Tc:i:")) != -1) {
        switch (option) {
        case 's': server_port = optarg; parse_number(optarg, 0, 65535, &ok); break;
        case 'b': bind_addr = optarg; break;
        case 'T': tcp = 1; break;
        case 'c': count = parse_number(optarg, 1, 1000000000L, &ok); break;
        case 'i': interval = parse_number(optarg, 0, 86400000L, &ok); break;
        default: return usage(NULL);
        }
        if (!ok)
            return usage("bad number for an option");
    }
    signal(SIGPIPE, SIG_IGN);
    if (server_port != NULL) {
        if (optind != argc)
            return usage("a server takes no HOST PORT");
        return run_server(bind_addr, server_port, tcp);
    }
    if (argc - optind != 2)
        return usage("a client needs HOST PORT");
    parse_number(argv[optind + 1], 1, 65535, &ok);
    if (!ok)
        return usage("bad port");
    return run_client(argv[optind], argv[optind + 1], tcp, count, interval);
}
