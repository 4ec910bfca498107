/*
 * tapcap: every frame crossing one network interface, one line each, for plinth's VLAN
 * lab (tools/src/lab/capture.rs). Runs on the host inside the lab's network namespace
 * (`ip netns exec NS tapcap IFNAME`).
 *
 * Linux takes the 802.1Q tag off a received frame before packet sockets see it (and a
 * frame sent through a device with VLAN offload, such as a tap, still has it off), so
 * the tag is read back from PACKET_AUXDATA; a frame whose tag is still in its bytes is
 * read from there. Either way the line carries the VID and the on-wire length (tag
 * included). A TCP super-frame a guest handed its tap whole for the host to cut (GSO) is
 * one line, its length the bytes of its segments on a wire: the socket gets each
 * frame's virtio_net_hdr (PACKET_VNET_HDR), whose segment size says how many there are,
 * each repeating the headers:
 *
 *   tapcap: ready IFNAME IFINDEX                       once the socket is bound
 *   f DIR VID LEN DST SRC ETHERTYPE TIME                per frame
 *   tapcap: end frames=N drops=N                        after stdin is closed
 *
 * DIR is `r` for a frame the interface received (from the guest behind a tap) and `s`
 * for one it sent (to the guest); VID is `-` for an untagged frame; DST and SRC are 12
 * hex digits; ETHERTYPE is the inner one of a tagged frame, 4 hex digits; TIME is when
 * the kernel took the frame, CLOCK_REALTIME nanoseconds (SO_TIMESTAMPNS). Closing stdin
 * stops it: it reads what is already queued, prints the end line and exits 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void hex(const unsigned char *p, char *out) {
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 6; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[12] = 0;
}

/* One frame, or 0 when none is queued, or -1 on error. */
/* The bytes of Ethernet (with a tag in the bytes), IPv4 and TCP headers at the start of
 * `f` (`got` bytes of it), or 0 if it is not TCP over IPv4. */
static size_t tcp_headers(const unsigned char *f, size_t got) {
    size_t ip = 14;
    if (got >= 18 && f[12] == 0x81 && f[13] == 0x00)
        ip = 18;
    if (got < ip + 20 || f[ip - 2] != 0x08 || f[ip - 1] != 0x00 || f[ip + 9] != 6)
        return 0;
    size_t tcp = ip + (size_t)(f[ip] & 15) * 4;
    if (got < tcp + 13)
        return 0;
    return tcp + (size_t)(f[tcp + 12] >> 4) * 4;
}

static int one(int fd, unsigned long *frames) {
    /* The virtio_net_hdr, then the frame's headers (tag, IPv4 and TCP with options). */
    unsigned char raw[sizeof(struct virtio_net_hdr) + 160];
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(struct tpacket_auxdata)) +
                   CMSG_SPACE(sizeof(struct timespec))];
    } ctl;
    struct sockaddr_ll from;
    struct iovec iov = {.iov_base = raw, .iov_len = sizeof raw};
    struct msghdr msg = {
        .msg_name = &from,
        .msg_namelen = sizeof from,
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = &ctl,
        .msg_controllen = sizeof ctl,
    };
    /* MSG_TRUNC: the frame's whole length, though only its headers are copied. */
    ssize_t n = recvmsg(fd, &msg, MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno == EINTR)
            return 1;
        perror("tapcap: recvmsg");
        return -1;
    }
    if ((size_t)n < sizeof(struct virtio_net_hdr))
        return 1;
    struct virtio_net_hdr vh;
    memcpy(&vh, raw, sizeof vh);
    const unsigned char *buf = raw + sizeof vh;
    n -= (ssize_t)sizeof vh;
    size_t room = sizeof raw - sizeof vh;
    size_t got = (size_t)n < room ? (size_t)n : room;
    if (got < 14)
        return 1;
    size_t len = (size_t)n;
    /* Segments on a wire: the headers again for each after the first. */
    size_t segments = 1;
    if ((vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE && vh.gso_size > 0) {
        size_t hdr = tcp_headers(buf, got);
        if (hdr > 0 && len > hdr) {
            segments = (len - hdr + vh.gso_size - 1) / vh.gso_size;
            len += (segments - 1) * hdr;
        }
    }
    int vid = -1;
    unsigned long long at = 0;
    unsigned type = (unsigned)buf[12] << 8 | buf[13];
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec t;
            memcpy(&t, CMSG_DATA(c), sizeof t);
            at = (unsigned long long)t.tv_sec * 1000000000ULL + (unsigned long long)t.tv_nsec;
            continue;
        }
        if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA)
            continue;
        struct tpacket_auxdata aux;
        memcpy(&aux, CMSG_DATA(c), sizeof aux);
        if (aux.tp_status & TP_STATUS_VLAN_VALID) {
            vid = aux.tp_vlan_tci & 0x0fff;
            len += 4 * segments;
        }
    }
    if (vid < 0 && (type == ETH_P_8021Q || type == ETH_P_8021AD) && got >= 18) {
        vid = ((buf[14] << 8) | buf[15]) & 0x0fff;
        type = (unsigned)buf[16] << 8 | buf[17];
    }
    char dst[13], src[13], vids[8];
    hex(buf, dst);
    hex(buf + 6, src);
    if (vid < 0)
        strcpy(vids, "-");
    else
        snprintf(vids, sizeof vids, "%d", vid);
    printf("f %c %s %zu %s %s %04x %llu\n", from.sll_pkttype == PACKET_OUTGOING ? 's' : 'r',
           vids, len, dst, src, type, at);
    ++*frames;
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tapcap IFNAME\n");
        return 2;
    }
    unsigned index = if_nametoindex(argv[1]);
    if (index == 0) {
        fprintf(stderr, "tapcap: no interface %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0) {
        perror("tapcap: socket(AF_PACKET)");
        return 1;
    }
    int on = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &on, sizeof on) != 0) {
        perror("tapcap: PACKET_AUXDATA");
        return 1;
    }
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &on, sizeof on) != 0) {
        perror("tapcap: PACKET_VNET_HDR");
        return 1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) {
        perror("tapcap: SO_TIMESTAMPNS");
        return 1;
    }
    /* Room for bursts while the lines are written (best effort: needs CAP_NET_ADMIN). */
    int room = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &room, sizeof room) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &room, sizeof room);
    struct sockaddr_ll at = {
        .sll_family = AF_PACKET,
        .sll_protocol = htons(ETH_P_ALL),
        .sll_ifindex = (int)index,
    };
    if (bind(fd, (struct sockaddr *)&at, sizeof at) != 0) {
        perror("tapcap: bind");
        return 1;
    }
    /* Frames queued between socket() and bind() may be another interface's. */
    for (;;) {
        char junk[1];
        if (recv(fd, junk, sizeof junk, MSG_DONTWAIT | MSG_TRUNC) < 0)
            break;
    }
    /* Counters from here on only (reading them resets them). */
    struct tpacket_stats stats;
    socklen_t slen = sizeof stats;
    getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &slen);
    printf("tapcap: ready %s %u\n", argv[1], index);
    fflush(stdout);
    unsigned long frames = 0;
    int stopping = 0;
    while (!stopping) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            perror("tapcap: poll");
            return 1;
        }
        if (p[1].revents) {
            /* Anything on stdin, or its end, means stop. */
            stopping = 1;
        }
        int r;
        while ((r = one(fd, &frames)) > 0) {
        }
        if (r < 0)
            return 1;
    }
    slen = sizeof stats;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &slen) != 0)
        stats.tp_drops = 0;
    printf("tapcap: end frames=%lu drops=%u\n", frames, stats.tp_drops);
    fflush(stdout);
    return 0;
}
