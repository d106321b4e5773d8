/* What ttcp_ref and roundtrip_ref share (common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int fail(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s: ", peer_name);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    return -1;
}

int usage_error(const char *why, const char *text)
{
    if (why != NULL)
        fprintf(stderr, "%s: %s\n", peer_name, why);
    fputs(text, stderr);
    return 2;
}

long parse_number(const char *text, long low, long high, int *ok)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    *ok = errno == 0 && *text != '\0' && *end == '\0' && value >= low && value <= high;
    return value;
}

int bound_socket(const char *bind_addr, const char *port, int type, const char *verb)
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
        hints.ai_socktype = type;
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
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
                (type != SOCK_STREAM || listen(fd, 16) == 0)) {
                freeaddrinfo(found);
                return fd;
            }
            if (bind_addr != NULL || i == count - 1)
                fail("cannot %s %s port %s: %s", verb, hosts[i], port, strerror(errno));
            close(fd);
        }
        freeaddrinfo(found);
    }
    return -1;
}

int local_port(int fd)
{
    struct sockaddr_storage addr;
    socklen_t size = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &size) != 0)
        return -1;
    if (addr.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    return ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

int connect_to(const char *host, const char *port, int type)
{
    struct addrinfo hints, *found, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = type;
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

int send_all(int fd, const void *data, size_t size)
{
    size_t sent = 0;
    while (sent < size) {
        ssize_t n = send(fd, (const char *)data + sent, size - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        sent += (size_t)n;
    }
    return 0;
}
