/* Reading the current task: ids as seen in its namespaces and on the host. */
#ifndef PYTRACEE_TASK_H
#define PYTRACEE_TASK_H

#include "kread.h"

static __always_inline struct upid task_upid(struct task_struct *t)
{
    struct upid u = {};
    struct pid *p = KPTR(struct task_struct, t)->thread_pid;
    unsigned int level = p->level;
    bpf_core_read(&u, sizeof(u), &p->numbers[level]); /* a variable index: not a plain load */
    return u;
}

/* Thread id inside the task's own pid namespace. */
static __always_inline __u32 task_ns_tid(struct task_struct *t)
{
    return task_upid(t).nr;
}

static __always_inline __u32 task_ns_tgid(struct task_struct *t)
{
    return task_ns_tid(KPTR(struct task_struct, t)->group_leader);
}

static __always_inline __u32 task_pid_ns(struct task_struct *t)
{
    struct upid u = task_upid(t);
    return u.ns ? KPTR(struct pid_namespace, u.ns)->ns.inum : 0;
}

static __always_inline __u64 task_start_time(struct task_struct *t)
{
    return KPTR(struct task_struct, t)->start_boottime;
}

/* The parts of a task's header that take many pointer reads, kept per task (task
 * storage: freed with the task). They change only with the task's parent
 * (reparenting: ppid, parent start), its nsproxy (setns, unshare: mount ns) or an
 * exec (which may make a thread the group leader: pid, tid, leader start), so an
 * entry is used only while the first two are as recorded, and exec marks it stale.
 * It keeps the header's task span (start_time .. pid_ns) whole; the fields in it
 * that are cheap to read (cgroup, host pid/tid, uid/gid) are written after it. */
#define TASK_SPAN_START __builtin_offsetof(struct event_header, start_time)
#define TASK_SPAN_LEN (__builtin_offsetof(struct event_header, comm) - TASK_SPAN_START)

struct task_ctx_cache {
    __u64 nsproxy;
    __u64 parent;
    __u8 span[TASK_SPAN_LEN];
};

struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct task_ctx_cache);
} task_ctx SEC(".maps");

static __always_inline void forget_task_ctx(void)
{
    /* Marked stale, not deleted: deleting and allocating again costs more. */
    struct task_ctx_cache *c = bpf_task_storage_get(&task_ctx, bpf_get_current_task_btf(), 0, 0);
    if (c)
        c->parent = 0; /* never a real parent: the entry no longer matches */
}

/* The cached part of the current task's header. A global function: verified once,
 * not at each of the many places that fill a header. */
__noinline int fill_task_ctx(struct event_header *h)
{
    if (!h)
        return 0;
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    struct task_struct *tk = KPTR(struct task_struct, t);
    struct task_struct *parent = tk->real_parent;
    __u64 nsproxy = (__u64)tk->nsproxy;
    /* Lifecycle events come once or twice per process: not worth a new entry (an
     * allocation); the events of a task's syscalls make one. */
    __u32 id = h->event_id;
    int lifecycle = id == EVENT_SCHED_PROCESS_FORK || id == EVENT_SCHED_PROCESS_EXEC ||
                    id == EVENT_SCHED_PROCESS_EXIT;
    struct task_ctx_cache *c = bpf_task_storage_get(&task_ctx, bpf_get_current_task_btf(), 0,
                                                    lifecycle ? 0 : BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (c && c->nsproxy == nsproxy && c->parent == (__u64)parent) {
        __builtin_memcpy((__u8 *)h + TASK_SPAN_START, c->span, TASK_SPAN_LEN);
        return 0;
    }
    h->start_time = task_start_time(t);
    h->leader_start_time = tk->group_leader->start_boottime;
    h->parent_start_time = parent->group_leader->start_boottime;
    h->host_ppid = parent->tgid;
    h->tid = task_ns_tid(t);
    h->pid = task_ns_tgid(t);
    h->ppid = task_ns_tgid(parent);
    h->mnt_ns = tk->nsproxy->mnt_ns->ns.inum;
    h->pid_ns = task_pid_ns(t);
    if (c) {
        c->nsproxy = nsproxy;
        c->parent = (__u64)parent;
        __builtin_memcpy(c->span, (__u8 *)h + TASK_SPAN_START, TASK_SPAN_LEN);
    }
    return 0;
}

/* Every header is the current task's. */
static __always_inline void fill_header(struct event_header *h, struct task_struct *t,
                                        __u32 event_id, __s32 syscall, __u32 version)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u64 uid_gid = bpf_get_current_uid_gid();

    h->ts = bpf_ktime_get_boot_ns();
    h->event_id = event_id;
    fill_task_ctx(h);
    h->cgroup_id = bpf_get_current_cgroup_id();
    h->retval = 0;
    h->host_tid = (__u32)pid_tgid;
    h->host_pid = pid_tgid >> 32;
    h->uid = (__u32)uid_gid;
    h->gid = uid_gid >> 32;
    h->syscall = syscall;
    h->cpu = bpf_get_smp_processor_id();
    h->policies_version = version;
    h->argnum = 0;
    h->flags = 0;
    bpf_get_current_comm(h->comm, sizeof(h->comm));
    /* Copied whole with plain loads: the kernel zero-fills the name past its end
     * (sethostname), and user space cuts it at the first NUL. */
    struct uts_namespace *uts = KPTR(struct task_struct, t)->nsproxy->uts_ns;
    const __u64 *name = (const __u64 *)uts->name.nodename;
    __u64 *to = (__u64 *)h->uts;
#pragma unroll
    for (int i = 0; i < UTS_LEN / 8; i++)
        to[i] = name[i];
}

#endif
