/* Test workload: performs exactly the syscalls a test asks for.
 *
 *   syscaller [-c COMM] open PATH FLAGS       openat(AT_FDCWD, PATH, FLAGS, 0644), print fd
 *   syscaller [-c COMM] getppid N              N raw getppid syscalls
 *   syscaller [-c COMM] exit CODE              _exit(CODE)
 *   syscaller [-c COMM] spawn CODE PROG ARG... fork; child execs PROG; parent waits, prints pid
 *   syscaller [-c COMM] close FD               close(FD), print the return value
 *   syscaller [-c COMM] int80-getpid           ia32 getpid (20) through int 0x80, print it
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "-c") == 0) {
        prctl(PR_SET_NAME, argv[2], 0, 0, 0);
        i = 3;
    }
    if (i >= argc)
        return 64;
    const char *cmd = argv[i];
    if (!strcmp(cmd, "open") && i + 2 < argc) {
        long fd = syscall(SYS_openat, AT_FDCWD, argv[i + 1], (int)strtol(argv[i + 2], NULL, 0), 0644);
        printf("%ld\n", fd < 0 ? -errno : fd);
        return 0;
    }
    if (!strcmp(cmd, "getppid") && i + 1 < argc) {
        long n = strtol(argv[i + 1], NULL, 0);
        for (long k = 0; k < n; k++)
            syscall(SYS_getppid);
        return 0;
    }
    if (!strcmp(cmd, "exit") && i + 1 < argc)
        _exit(atoi(argv[i + 1]));
    if (!strcmp(cmd, "close") && i + 1 < argc) {
        long r = syscall(SYS_close, atoi(argv[i + 1]));
        printf("%ld\n", r < 0 ? -errno : r);
        return 0;
    }
    if (!strcmp(cmd, "int80-getpid")) {
        long r;
        asm volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
        printf("%ld\n", r);
        return 0;
    }
    if (!strcmp(cmd, "forks") && i + 1 < argc) { /* N children that exit at once, one at a time */
        long n = atol(argv[i + 1]);
        for (long k = 0; k < n; k++) {
            pid_t pid = fork();
            if (pid == 0)
                _exit(0);
            waitpid(pid, NULL, 0);
        }
        printf("%ld\n", n);
        return 0;
    }
    if (!strcmp(cmd, "spawn") && i + 2 < argc) {
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[i + 2], &argv[i + 2]);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        printf("%d %d\n", pid, WEXITSTATUS(status));
        return atoi(argv[i + 1]);
    }
    return 64;
}
