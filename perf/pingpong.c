/* A loopback TCP round trip between two processes, with blocking sockets and nothing else: the
 * floor under every hop an ensemble's write makes on this machine.
 *
 *   cc -O2 -o /tmp/pingpong perf/pingpong.c && /tmp/pingpong [round trips] [port]
 *   taskset -c 0 /tmp/pingpong        # both processes on one core
 *
 * Prints mean, p50, p90 and p99 in microseconds. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MSG = 100 };

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int read_exactly(int fd, char *buf, int n) {
    for (int got = 0; got < n;) {
        int r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += r;
    }
    return n;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    int port = argc > 2 ? atoi(argv[2]) : 23456;
    int one = 1;
    char buf[MSG];
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 1)) {
        perror("pingpong: bind");
        return 1;
    }
    if (fork() == 0) { /* the echoing side */
        int s = accept(listener, NULL, NULL);
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        while (read_exactly(s, buf, MSG) == MSG)
            if (write(s, buf, MSG) != MSG)
                break;
        _exit(0);
    }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&addr, sizeof addr)) {
        perror("pingpong: connect");
        return 1;
    }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    double *us = malloc(n * sizeof *us);
    memset(buf, 1, MSG);
    for (int i = 0; i < n; i++) {
        double t = seconds();
        if (write(c, buf, MSG) != MSG || read_exactly(c, buf, MSG) != MSG) {
            fprintf(stderr, "pingpong: the echo went away\n");
            return 1;
        }
        us[i] = (seconds() - t) * 1e6;
    }
    close(c);
    wait(NULL);
    qsort(us, n, sizeof *us, by_value);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += us[i];
    printf("loopback TCP round trip, %d of them: mean %.1f us, p50 %.1f, p90 %.1f, p99 %.1f\n", n,
           sum / n, us[n / 2], us[n * 9 / 10], us[n * 99 / 100]);
    return 0;
}
