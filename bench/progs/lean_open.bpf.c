/* The least a tracer can do to report every successful open with the content of
 * security_file_open, for bench/mixed_workload.py's "lean opens" case.
 *
 * sys_enter: empty (the same dispatch every syscall tracer here pays). sys_exit of a
 * successful open, openat, openat2 or creat: the file behind the returned fd, its
 * absolute path walked through dentries and mounts (pytracee's own walk, path.h), dev,
 * inode, ctime, flags, and the caller's path string, with pid, tid, comm and time, in
 * one ring record. No policy, no scope, no task context beyond that, no filters: what
 * remains is what the event's content itself costs on this kernel.
 *
 *   clang -O2 -g -target bpf -I/work/main/bpf -c lean_open.bpf.c -o lean_open.bpf.o */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "common/event.h"
#include "common/buffer.h"
#include "common/path.h" /* includes kread.h, which fd.h needs */
#include "common/fd.h"

#define NR_OPEN 2
#define NR_CREAT 85
#define NR_OPENAT 257
#define NR_OPENAT2 437
#define LEAN_STR 4096

struct lean_rec {
    __u64 ts;
    __u64 ino;
    __u64 ctime;
    __u32 pid;
    __u32 tid;
    __u32 dev;
    __u32 flags;
    __u16 user_len; /* the caller's string first, then the resolved path */
    __u16 path_len;
    char comm[TASK_COMM_LEN];
    char data[2 * LEAN_STR];
};

PERCPU_SCRATCH(lean_scratch, struct lean_rec, lean_buf)

SEC("raw_tracepoint/sys_enter")
int lean_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    return 0;
}

SEC("tp_btf/sys_exit")
int lean_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    long id = regs->orig_ax;
    __s64 ret = ctx->args[1];
    if (ret < 0 || (id != NR_OPENAT && id != NR_OPEN && id != NR_OPENAT2 && id != NR_CREAT))
        return 0;
    const char *upath = (const char *)(id == NR_OPEN || id == NR_CREAT ? regs->di : regs->si);
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    struct file *f = fd_file(t, ret);
    struct lean_rec *r = lean_buf();
    if (!f || !r)
        return 0;
    struct file *fk = KPTR(struct file, f);
    struct inode *inode = fk->f_inode;
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    r->ts = bpf_ktime_get_boot_ns();
    r->pid = pid_tgid >> 32;
    r->tid = (__u32)pid_tgid;
    r->flags = fk->f_flags;
    r->ino = KPTR(struct inode, inode)->i_ino;
    r->dev = KPTR(struct inode, inode)->i_sb->s_dev;
    r->ctime = inode_ctime(inode);
    bpf_get_current_comm(r->comm, sizeof(r->comm));

    long ulen = bpf_probe_read_user_str(r->data, LEAN_STR, upath);
    if (ulen < 1)
        ulen = 1;
    r->user_len = ulen - 1;
    struct path fp = {};
    bpf_core_read(&fp, sizeof(fp), &f->f_path);
    int start = resolve_path((__u64)fp.dentry, (__u64)fp.mnt);
    struct path_buf *pb = path_buf();
    __u32 plen = 0;
    if (start >= 0 && pb) {
        __u32 from = start & (PATH_MAX_LEN - 1);
        plen = PATH_MAX_LEN - from;
        bpf_probe_read_kernel(&r->data[(ulen - 1) & (LEAN_STR - 1)], plen & (LEAN_STR - 1),
                              &pb->data[from]);
    }
    r->path_len = plen;
    __u32 size = __builtin_offsetof(struct lean_rec, data) + ((ulen - 1) & (LEAN_STR - 1)) +
                 (plen & (LEAN_STR - 1));
    if (size > sizeof(*r))
        size = sizeof(*r);
    /* counted as pytracee counts (buffer.h's stats map), under security_file_open's id */
    count_stat(bpf_ringbuf_output(&events, r, size, 0) ? STAT_LOST_RING_FULL : STAT_SUBMITTED,
               EVENT_SECURITY_FILE_OPEN);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
