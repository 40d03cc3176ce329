/* Syscall storm for bench/syscall_storm.py.
 *
 *   pt-storm N     calls syscall(SYS_getppid) exactly N times
 *
 * The bench compiles this into a temp dir as "pt-storm", so its comm is
 * "pt-storm" and tracers can scope to it. On exit it prints one line:
 *     <loop start ns> <loop end ns>
 * both CLOCK_MONOTONIC (the clock of Python's time.monotonic_ns()), taken
 * around the syscall loop only. clock_gettime goes through the vDSO, so the
 * storm makes no syscalls other than the N getppid, its start-up and that
 * one write. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    long long start, end;

    start = now_ns();
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    end = now_ns();
    printf("%lld %lld\n", start, end);
    return 0;
}
