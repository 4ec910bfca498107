/*
 * lab-inject: raw Ethernet frames onto a Linux peer's interface, for plinth's hostile
 * network tests (tests/tests/net_hostile.rs): runts, oversize frames, truncated or
 * stacked 802.1Q tags, floods. Runs inside the peer (tools/src/lab/peer.rs).
 *
 *   lab-inject IFNAME COUNT LEN HEX
 *       sends COUNT copies of one frame through an AF_PACKET socket bound to IFNAME:
 *       the bytes HEX (destination address onwards, no FCS), zero-padded to LEN bytes
 *       (LEN 0: HEX's own length), as fast as the interface takes them (a full queue,
 *       ENOBUFS, is waited out). Prints `lab-inject: sent=N errors=E ns=NS`, after
 *       `lab-inject: error: sendto: ...` for the first refusal if there was one.
 *
 * The kernel sends the bytes as they are: a tag written into HEX goes on the wire, and
 * nothing is added. It still refuses frames shorter than an Ethernet header and longer
 * than the interface's MTU allows (raise it with `ip link set IFNAME mtu N`).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LEN 65536

static unsigned char frame[MAX_LEN];

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int nibble(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        printf("lab-inject: error: usage: lab-inject IFNAME COUNT LEN HEX\n");
        return 1;
    }
    long count = strtol(argv[2], NULL, 10);
    long len = strtol(argv[3], NULL, 10);
    const char *hex = argv[4];
    size_t digits = strlen(hex);
    if (count < 0 || len < 0 || len > MAX_LEN || digits % 2 != 0 || digits / 2 > MAX_LEN) {
        printf("lab-inject: error: bad COUNT, LEN or HEX\n");
        return 1;
    }
    for (size_t i = 0; i < digits / 2; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            printf("lab-inject: error: HEX is not hexadecimal\n");
            return 1;
        }
        frame[i] = (unsigned char)(hi << 4 | lo);
    }
    if (len == 0)
        len = (long)(digits / 2);
    unsigned index = if_nametoindex(argv[1]);
    if (index == 0) {
        printf("lab-inject: error: no interface %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    /* Protocol 0: the socket sends only, and receives nothing. */
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) {
        printf("lab-inject: error: socket: %s\n", strerror(errno));
        return 1;
    }
    struct sockaddr_ll to = {
        .sll_family = AF_PACKET,
        .sll_ifindex = (int)index,
        .sll_halen = 6,
    };
    memcpy(to.sll_addr, frame, 6);
    long sent = 0, errors = 0;
    int64_t t0 = now_ns();
    for (long i = 0; i < count; i++) {
        ssize_t n = sendto(fd, frame, (size_t)len, 0, (struct sockaddr *)&to, sizeof to);
        if (n < 0 && (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)) {
            usleep(100);
            i--;
            continue;
        }
        if (n != len) {
            if (errors++ == 0)
                printf("lab-inject: error: sendto: %s\n", n < 0 ? strerror(errno) : "short");
            continue;
        }
        sent++;
    }
    printf("lab-inject: sent=%ld errors=%ld ns=%lld\n", sent, errors, (long long)(now_ns() - t0));
    return 0;
}
