/* POSIX HAL: the firmware as a host process serving a new pseudo-terminal, which it prints.
 * `edgekit_device_posix` then behaves like a board on /dev/pts/N (tests, debugging the firmware
 * logic with gdb). Cycles are nanoseconds of CLOCK_MONOTONIC. */
#define _XOPEN_SOURCE 600
#define _DEFAULT_SOURCE /* cfmakeraw */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "edgekit_hal.h"

static int fd = -1;
static uint8_t buffer[4096];
static ssize_t buffered, position;

int edgekit_hal_read_byte(void) {
    if (position < buffered) return buffer[position++];
    struct pollfd wait = {fd, POLLIN, 0};
    if (poll(&wait, 1, 100) <= 0) return -1;
    buffered = read(fd, buffer, sizeof buffer);
    position = 0;
    if (buffered <= 0) {
        buffered = 0;
        if (wait.revents & POLLHUP) usleep(10000); /* no host on the pty yet */
        return -1;
    }
    return buffer[position++];
}

void edgekit_hal_write(const uint8_t *data, size_t length) {
    while (length) {
        ssize_t written = write(fd, data, length);
        if (written <= 0) {
            usleep(1000);
            continue;
        }
        data += written;
        length -= (size_t)written;
    }
}

uint32_t edgekit_hal_cycles(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint32_t)((uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
}

int main(void) {
    fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (fd < 0 || grantpt(fd) || unlockpt(fd)) {
        perror("edgekit_device_posix: cannot open a pseudo-terminal");
        return 1;
    }
    struct termios raw;
    int slave = open(ptsname(fd), O_RDWR | O_NOCTTY); /* kept open: the pty survives host reconnects */
    if (slave < 0 || tcgetattr(slave, &raw)) {
        perror("edgekit_device_posix: cannot configure the pseudo-terminal");
        return 1;
    }
    cfmakeraw(&raw);
    tcsetattr(slave, TCSANOW, &raw);
    printf("edgekit device on %s\n", ptsname(fd));
    fflush(stdout);
    edgekit_device_serve("posix", 921600, 1000);
    return 0;
}
