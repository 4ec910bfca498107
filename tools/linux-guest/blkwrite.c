/*
 * blkwrite: the Linux side of `plinth bench blk`, run inside plinth's Linux test guest.
 *
 * Writes REGION_MIB MiB to DEVICE from offset 0 in 1 MiB O_DIRECT pwrite()s, one in
 * flight, from one buffer filled before the clock starts, then fdatasync()s it: the
 * shape of the runtime's own `bench blk` write and flush at depth 1. Both are timed
 * with CLOCK_MONOTONIC and printed as one line for the host to parse:
 *
 *   blkwrite: device=/dev/vda bytes=N request=N in_flight=1 write_ns=N flush_ns=N clocksource=NAME
 *
 * or `blkwrite: error: ...` and exit status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REQUEST (1 << 20)

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int fail(const char *what) {
    printf("blkwrite: error: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        printf("blkwrite: error: usage: blkwrite DEVICE REGION_MIB\n");
        return 1;
    }
    const char *device = argv[1];
    long mib = strtol(argv[2], NULL, 10);
    if (mib <= 0) {
        printf("blkwrite: error: REGION_MIB must be positive\n");
        return 1;
    }
    /* The clock the timings come from, for the report. */
    char clocksource[32] = "unknown";
    FILE *cs = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (cs) {
        if (fscanf(cs, "%31s", clocksource) != 1)
            strcpy(clocksource, "unknown");
        fclose(cs);
    }
    void *buf;
    /* O_DIRECT needs an aligned buffer; 4 KiB covers any logical block size here. */
    if (posix_memalign(&buf, 4096, REQUEST) != 0) {
        errno = ENOMEM;
        return fail("buffer");
    }
    memset(buf, 0x5a, REQUEST);
    int fd = open(device, O_WRONLY | O_DIRECT);
    if (fd < 0)
        return fail(device);
    int64_t t0 = now_ns();
    for (long i = 0; i < mib; i++) {
        ssize_t n = pwrite(fd, buf, REQUEST, (off_t)i * REQUEST);
        if (n != REQUEST) {
            if (n >= 0)
                errno = EIO;
            return fail("pwrite");
        }
    }
    int64_t t1 = now_ns();
    if (fdatasync(fd) != 0)
        return fail("fdatasync");
    int64_t t2 = now_ns();
    close(fd);
    printf("blkwrite: device=%s bytes=%lld request=%d in_flight=1 write_ns=%lld flush_ns=%lld clocksource=%s\n",
           device, (long long)mib * REQUEST, REQUEST, (long long)(t1 - t0),
           (long long)(t2 - t1), clocksource);
    return 0;
}
