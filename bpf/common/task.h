/* Reading the current task: ids as seen in its namespaces and on the host. */
#ifndef PYTRACEE_TASK_H
#define PYTRACEE_TASK_H

static __always_inline struct upid task_upid(struct task_struct *t)
{
    struct upid u = {};
    struct pid *p = BPF_CORE_READ(t, thread_pid);
    unsigned int level = BPF_CORE_READ(p, level);
    bpf_core_read(&u, sizeof(u), &p->numbers[level]);
    return u;
}

/* Thread id inside the task's own pid namespace. */
static __always_inline __u32 task_ns_tid(struct task_struct *t)
{
    return task_upid(t).nr;
}

static __always_inline __u32 task_ns_tgid(struct task_struct *t)
{
    return task_ns_tid(BPF_CORE_READ(t, group_leader));
}

static __always_inline __u32 task_pid_ns(struct task_struct *t)
{
    struct upid u = task_upid(t);
    return BPF_CORE_READ(u.ns, ns.inum);
}

static __always_inline __u64 task_start_time(struct task_struct *t)
{
    return BPF_CORE_READ(t, start_boottime);
}

static __always_inline void fill_header(struct event_header *h, struct task_struct *t,
                                        __u32 event_id, __s32 syscall, __u32 version)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u64 uid_gid = bpf_get_current_uid_gid();
    struct task_struct *parent = BPF_CORE_READ(t, real_parent);

    h->ts = bpf_ktime_get_boot_ns();
    h->start_time = task_start_time(t);
    h->leader_start_time = task_start_time(BPF_CORE_READ(t, group_leader));
    h->parent_start_time = task_start_time(BPF_CORE_READ(parent, group_leader));
    h->cgroup_id = bpf_get_current_cgroup_id();
    h->retval = 0;
    h->host_tid = (__u32)pid_tgid;
    h->host_pid = pid_tgid >> 32;
    h->host_ppid = BPF_CORE_READ(parent, tgid);
    h->tid = task_ns_tid(t);
    h->pid = task_ns_tgid(t);
    h->ppid = task_ns_tgid(parent);
    h->uid = (__u32)uid_gid;
    h->gid = uid_gid >> 32;
    h->mnt_ns = BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);
    h->pid_ns = task_pid_ns(t);
    h->event_id = event_id;
    h->syscall = syscall;
    h->cpu = bpf_get_smp_processor_id();
    h->policies_version = version;
    h->argnum = 0;
    h->flags = 0;
    bpf_get_current_comm(h->comm, sizeof(h->comm));
    struct uts_namespace *uts = BPF_CORE_READ(t, nsproxy, uts_ns);
    bpf_probe_read_kernel_str(h->uts, sizeof(h->uts), uts->name.nodename);
}

#endif
