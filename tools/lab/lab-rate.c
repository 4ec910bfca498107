/*
 * lab-rate: how fast a TCP server sends, over time, for plinth's network-limit tests
 * (tests/tests/net_hostile.rs): a chargen-like server streams, this reads and reports.
 * Runs inside a Linux peer of the VLAN lab (tools/src/lab/peer.rs).
 *
 *   lab-rate IP PORT SECONDS
 *       connects, reads for SECONDS and closes. Prints `lab-rate: t=NS bytes=N` (time
 *       since connect() returned, bytes read so far) every 250 ms, then
 *       `lab-rate: total bytes=N ns=NS`. Times are CLOCK_MONOTONIC.
 *
 * Errors print `lab-rate: error: ...` and exit 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS 250000000LL

static char buf[64 * 1024];

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        printf("lab-rate: error: usage: lab-rate IP PORT SECONDS\n");
        return 1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
        printf("lab-rate: error: bad address %s\n", argv[1]);
        return 1;
    }
    int64_t duration = (int64_t)atoi(argv[3]) * 1000000000LL;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        printf("lab-rate: error: connect: %s\n", strerror(errno));
        return 1;
    }
    int64_t t0 = now_ns(), next = TICK_NS;
    long long total = 0;
    for (;;) {
        int64_t t = now_ns() - t0;
        while (t >= next) {
            printf("lab-rate: t=%lld bytes=%lld\n", (long long)t, total);
            next += TICK_NS;
        }
        if (t >= duration)
            break;
        struct pollfd p = {.fd = s, .events = POLLIN};
        int wait_ms = (int)((next - t) / 1000000) + 1;
        int r = poll(&p, 1, wait_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            printf("lab-rate: error: poll: %s\n", strerror(errno));
            return 1;
        }
        if (r == 0)
            continue;
        ssize_t n = read(s, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            printf("lab-rate: error: read: %s\n", strerror(errno));
            return 1;
        }
        if (n == 0) {
            printf("lab-rate: error: the server closed after %lld bytes\n", total);
            return 1;
        }
        total += n;
    }
    int64_t t1 = now_ns();
    close(s);
    printf("lab-rate: total bytes=%lld ns=%lld\n", total, (long long)(t1 - t0));
    return 0;
}
