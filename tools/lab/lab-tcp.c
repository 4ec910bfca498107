/*
 * lab-tcp: TCP throughput between two Linux peers of plinth's VLAN lab
 * (tools/src/lab/peer.rs), run inside the peers. Busybox's nc copies 1 KiB at a time and
 * measures itself more than the network under TCG (about 6 MiB/s even over loopback),
 * so the lab's baseline uses this instead.
 *
 *   lab-tcp recv PORT
 *       prints `lab-tcp: listening PORT`, accepts one connection, reads it to its end,
 *       closes it and prints `lab-tcp: received=BYTES ns=NS` (first byte to end).
 *   lab-tcp send IP PORT BYTES
 *       connects, writes BYTES in 64 KiB writes, half-closes, waits for the receiver to
 *       close (it has read everything) and prints `lab-tcp: sent=BYTES ns=NS` (from
 *       before connect() to the receiver's close).
 *
 * Times are CLOCK_MONOTONIC. Errors print `lab-tcp: error: ...` and exit 1. The
 * clients (send, fetch) give up when a connect, read or write makes no progress for
 * STALL_SECONDS, so a stalled peer ends in an error and the console stays usable.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define STALL_SECONDS 30

static char buf[CHUNK];

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int fail(const char *what) {
    printf("lab-tcp: error: %s: %s\n", what, strerror(errno));
    return 1;
}

/* A client socket whose connect, reads and writes fail after STALL_SECONDS idle. */
static int client_socket(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return s;
    struct timeval t = {.tv_sec = STALL_SECONDS};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &t, sizeof t);
    return s;
}

/* Listens on `port`, says so, and takes one connection: its socket, or -1 (reported). */
static int accept_one(int port) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0) {
        fail("socket");
        return -1;
    }
    int on = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    const char *failed = NULL;
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0)
        failed = "bind";
    else if (listen(l, 1) != 0)
        failed = "listen";
    if (failed) {
        fail(failed);
        close(l);
        return -1;
    }
    printf("lab-tcp: listening %d\n", port);
    fflush(stdout);
    int c = accept(l, NULL, NULL);
    if (c < 0)
        fail("accept");
    close(l);
    return c;
}

static int recv_mode(int port) {
    int c = accept_one(port);
    if (c < 0)
        return 1;
    long long total = 0;
    int64_t t0 = 0;
    for (;;) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail("read");
        if (n == 0)
            break;
        if (total == 0)
            t0 = now_ns();
        total += n;
    }
    int64_t t1 = now_ns();
    close(c);
    printf("lab-tcp: received=%lld ns=%lld\n", total, (long long)(total ? t1 - t0 : 0));
    return 0;
}

static int send_mode(const char *ip, int port, long long bytes) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        printf("lab-tcp: error: bad address %s\n", ip);
        return 1;
    }
    int s = client_socket();
    if (s < 0)
        return fail("socket");
    int64_t t0 = now_ns();
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0)
        return fail("connect");
    long long left = bytes;
    while (left > 0) {
        size_t want = left < CHUNK ? (size_t)left : CHUNK;
        ssize_t n = write(s, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail("write");
        left -= n;
    }
    if (shutdown(s, SHUT_WR) != 0)
        return fail("shutdown");
    /* The receiver closes once it has read everything. */
    for (;;) {
        ssize_t n = read(s, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail("read");
        if (n == 0)
            break;
    }
    int64_t t1 = now_ns();
    close(s);
    printf("lab-tcp: sent=%lld ns=%lld\n", bytes, (long long)(t1 - t0));
    return 0;
}

static int fetch_mode(const char *ip, int port, long long bytes) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        printf("lab-tcp: error: bad address %s\n", ip);
        return 1;
    }
    int s = client_socket();
    if (s < 0)
        return fail("socket");
    int64_t t0 = now_ns();
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0)
        return fail("connect");
    long long got = 0;
    while (got < bytes) {
        size_t want = bytes - got < CHUNK ? (size_t)(bytes - got) : CHUNK;
        ssize_t n = read(s, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail("read");
        if (n == 0) {
            printf("lab-tcp: error: the server closed after %lld of %lld bytes\n", got, bytes);
            return 1;
        }
        got += n;
    }
    int64_t t1 = now_ns();
    close(s);
    printf("lab-tcp: fetched=%lld ns=%lld\n", got, (long long)(t1 - t0));
    return 0;
}

static int source_mode(int port) {
    /* The client's close ends the stream: a write error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    int c = accept_one(port);
    if (c < 0)
        return 1;
    int64_t t0 = now_ns();
    long long total = 0;
    for (;;) {
        ssize_t n = write(c, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        total += n;
    }
    int64_t t1 = now_ns();
    close(c);
    printf("lab-tcp: sourced=%lld ns=%lld\n", total, (long long)(t1 - t0));
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "recv") == 0)
        return recv_mode(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "send") == 0) {
        long long bytes = strtoll(argv[4], NULL, 10);
        if (bytes <= 0) {
            printf("lab-tcp: error: BYTES must be positive\n");
            return 1;
        }
        return send_mode(argv[2], atoi(argv[3]), bytes);
    }
    if (argc == 5 && strcmp(argv[1], "fetch") == 0) {
        long long bytes = strtoll(argv[4], NULL, 10);
        if (bytes <= 0) {
            printf("lab-tcp: error: BYTES must be positive\n");
            return 1;
        }
        return fetch_mode(argv[2], atoi(argv[3]), bytes);
    }
    if (argc == 3 && strcmp(argv[1], "source") == 0)
        return source_mode(atoi(argv[2]));
    printf("lab-tcp: error: usage: lab-tcp recv PORT | lab-tcp send IP PORT BYTES | "
           "lab-tcp fetch IP PORT BYTES | lab-tcp source PORT\n");
    return 1;
}
