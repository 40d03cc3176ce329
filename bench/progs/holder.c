/* Process holder for bench/proctree_rss.py: keeps N real, exec'd processes alive.
 *
 *   pt-holder N               fork N children; each execs this binary again in hold mode
 *   pt-holder hold FD TAG...  (the children) report on FD, then pause() until killed
 *
 * Children exec (rather than just fork) so a process tree sees what it sees in real
 * life: a new exe, comm and argv per process; every child's argv is distinct
 * ("child-00042"). The parent prints "ready N <ms>" on stdout once all N children
 * have exec'd and reported, then waits for SIGTERM/SIGINT: it SIGKILLs its children,
 * reaps them all, prints "done" and exits 0. The bench runs it as a session leader,
 * so the children share its process group and a killpg() reaches them too; each child
 * also has PR_SET_PDEATHSIG, so none outlives a SIGKILLed parent. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int hold(int argc, char **argv)
{
    int fd = argc > 2 ? atoi(argv[2]) : -1;
    char b = 'x';

    if (fd >= 0) {
        /* A one-byte write to a pipe is atomic; the parent counts them. */
        if (write(fd, &b, 1) != 1)
            return 1;
        close(fd);
    }
    for (;;)
        pause();
}

/* SIGKILL every child started so far and reap them all. */
static void kill_and_reap(const pid_t *pids, long n)
{
    for (long i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "hold") == 0)
        return hold(argc, argv);
    if (argc < 2) {
        fprintf(stderr, "usage: %s N\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    if (n <= 0) {
        fprintf(stderr, "error: N must be positive\n");
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* Block the stop signals while spawning, so a stop mid-loop is seen after it;
     * the children unblock them before exec (the mask survives exec). */
    sigset_t stopset, oldset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGTERM);
    sigaddset(&stopset, SIGINT);
    sigprocmask(SIG_BLOCK, &stopset, &oldset);

    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        perror("readlink /proc/self/exe");
        return 1;
    }
    self[len] = '\0';

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        perror("pipe2");
        return 1;
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        perror("open /dev/null");
        return 1;
    }
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    if (!pids) {
        perror("calloc");
        return 1;
    }
    pid_t parent = getpid();
    long long t0 = now_ms();

    long started = 0;
    for (; started < n; started++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "error: fork %ld of %ld: %s\n", started + 1, n, strerror(errno));
            kill_and_reap(pids, started);
            return 1;
        }
        if (pid == 0) {
            char fdarg[16], idarg[32];
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)  /* the parent died before the prctl */
                _exit(1);
            /* stdin/stdout to /dev/null: the bench's stdout pipe sees EOF when the
             * parent exits, whatever the children do. */
            dup2(devnull, 0);
            dup2(devnull, 1);
            /* The write end must survive exec; the read end (CLOEXEC) must not. */
            fcntl(pfd[1], F_SETFD, 0);
            snprintf(fdarg, sizeof fdarg, "%d", pfd[1]);
            snprintf(idarg, sizeof idarg, "child-%05ld", started);
            sigprocmask(SIG_SETMASK, &oldset, NULL);
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            execl(self, "pt-holder", "hold", fdarg, idarg, "--tag=pytracee-rss-bench",
                  (char *)NULL);
            _exit(127);
        }
        pids[started] = pid;
    }
    close(pfd[1]);

    /* Count the children's reports: all N have exec'd once N bytes are in. A child
     * that failed to exec closes the pipe without writing, so EOF comes early. */
    long reported = 0;
    char buf[4096];
    while (reported < n) {
        ssize_t r = read(pfd[0], buf, sizeof buf);
        if (r > 0)
            reported += r;
        else if (r < 0 && errno == EINTR)
            continue;
        else
            break;
    }
    close(pfd[0]);
    if (reported < n) {
        fprintf(stderr, "error: only %ld of %ld children reported after exec\n", reported, n);
        kill_and_reap(pids, n);
        return 1;
    }
    printf("ready %ld %lld\n", n, now_ms() - t0);
    fflush(stdout);

    while (!stop_requested)
        sigsuspend(&oldset);  /* atomically unblocks SIGTERM/SIGINT and waits */

    kill_and_reap(pids, n);
    printf("done\n");
    fflush(stdout);
    return 0;
}
