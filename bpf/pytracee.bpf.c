// SPDX-License-Identifier: GPL-2.0
/* pytracee kernel side: syscalls and process lifecycle from raw tracepoints.
 *
 * sys_enter saves the arguments of selected syscalls per thread; sys_exit
 * emits them with the return value. Scope filters run before anything is
 * saved, so unselected work costs one array lookup.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "common/event.h"
#include "common/scope.h"
#include "common/task.h"
#include "common/buffer.h"
#include "common/path.h"
#include "common/fd.h"
#include "common/pathfilter.h"
#include "common/pagecache.h"
#include "common/security.h"
#include "common/capture.h"

char LICENSE[] SEC("license") = "GPL";

#define NR_EXECVE 59
#define NR_EXECVEAT 322
#define PF_KTHREAD 0x00200000
#define S_IFMT 00170000
#define TS_COMPAT 0x0002 /* thread_info.status: a 32-bit syscall, numbered differently */

/* Set before load by user space. */
/* State events pytracee needs whatever the policies select (EV_FLAG_SIGNAL). */
#define SIGNAL_PROCTREE 1   /* process fork, exec and exit */
#define SIGNAL_CONTAINERS 2 /* cgroup mkdir and rmdir */
const volatile __u32 cfg_signals = 0;

/* The active policy set version (see event.h). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} config_version SEC(".maps");

/* [slot * MAX_EVENT_ID + event id] -> policies that select the event. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, POLICY_SLOTS * MAX_EVENT_ID);
    __type(key, __u32);
    __type(value, __u64);
} events_map SEC(".maps");

/* syscall id -> how to fetch its arguments (does not change with policies). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, MAX_EVENT_ID);
    __type(key, __u32);
    __type(value, struct event_fetch);
} event_fetch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, POLICY_SLOTS);
    __type(key, __u32);
    __type(value, struct scope_config);
} scope_cfg SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 2048);
    __type(key, struct scope_comm_key);
    __type(value, struct scope_eq);
} scope_comm SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 32768);
    __type(key, struct scope_num_key);
    __type(value, struct scope_eq);
} scope_num SEC(".maps");

/* tgid -> per policy slot, the policies that follow this process (follow,
 * tree=PID). Per slot, because policy bits mean different policies in the
 * two sets; user space clears a slot before it writes a new set there. */
struct follow_bits {
    __u64 bits[POLICY_SLOTS];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, struct follow_bits);
} follow_map SEC(".maps");

/* cgroup id -> enum container_state (scope.h). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, __u8);
} containers_map SEC(".maps");

struct saved_args {
    __u64 args[6];
    __u64 own;     /* policies (of `version`) for the syscall's own event */
    __u64 sec;     /* ... and for its security event: fixed at entry, so a call that
                    * outlives two reloads does not read a slot reused since */
    __u64 cap;     /* ... and for capture_file_write (--capture write) */
    __s64 syscall; /* -1 once consumed */
    __s64 state;   /* what the derived event needs from before the call */
    __u32 version; /* the policy set `matched` was computed under */
    __u32 pad;
};

/* tid -> arguments of the syscall in flight. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, struct saved_args);
} task_args SEC(".maps");

/* Drop what a thread had saved (it exits, or exec starts a new image). A lookup
 * first: most threads never saved a call, and a delete locks its bucket anyway. */
static __always_inline void forget_saved(__u32 tid)
{
    if (bpf_map_lookup_elem(&task_args, &tid))
        bpf_map_delete_elem(&task_args, &tid);
}

/* Per syscall id, whether sys_enter / sys_exit have anything to do for it
 * (user space writes it with each policy set): the one lookup a syscall
 * nobody wants costs. INTEREST_EXIT is never cleared: a call saved under an
 * older set must still be found (and consumed) at its exit. */
#define INTEREST_ENTER 1    /* the active set(s) want the call, its exec or raw sys_enter */
#define INTEREST_EXIT 2     /* some set since start saved calls of it at sys_enter */
#define INTEREST_RAW_EXIT 4 /* the raw sys_exit event is selected */
#define INTEREST_SOCK 8     /* network events are selected: record who owns the socket */
#define INTEREST_AT_EXIT 16 /* the active set(s) want its derived event, built at sys_exit
                             * alone (FETCH_AT_EXIT): no per-thread lookup for it */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, MAX_EVENT_ID);
    __type(key, __u32);
    __type(value, __u8);
} syscall_interest SEC(".maps");

/* tid -> comm before execve replaced it (sched_process_exec prev_comm). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, char[TASK_COMM_LEN]);
} prev_comm_map SEC(".maps");

static __always_inline __u32 active_version(void)
{
    __u32 zero = 0;
    __u32 *v = bpf_map_lookup_elem(&config_version, &zero);
    return v ? *v : 0;
}

/* Policies of policy set `version` that select event `id`. */
static __always_inline __u64 event_policies(__u32 version, __u32 id)
{
    __u32 key = (version & 1) * MAX_EVENT_ID + (id % MAX_EVENT_ID);
    __u64 *p = bpf_map_lookup_elem(&events_map, &key);
    return p ? *p : 0;
}

/* Policies among `policies` whose filter on one field passes for `eq`. */
static __always_inline __u64 field_pass(struct scope_eq *eq, __u64 has_filter, __u64 has_eq)
{
    __u64 equal = eq ? eq->equal_in : 0;
    __u64 not_equal = eq ? eq->not_equal_in : 0;
    return ~has_filter | ((~has_eq | equal) & ~not_equal);
}

static __always_inline __u64 num_field_pass(struct scope_config *c, __u32 slot, __u32 field,
                                            __u32 value, __u64 res)
{
    if (field >= SCOPE_NFIELDS || !(c->has_filter[field] & res))
        return res;
    struct scope_num_key k = {.slot = slot, .field = field, .value = value};
    return res & field_pass(bpf_map_lookup_elem(&scope_num, &k), c->has_filter[field],
                            c->has_eq[field]);
}

struct range_walk {
    __u32 *mins;
    __u32 *maxs;
    __u64 todo;
    __u64 res;
    __u32 v;
};

static long range_step(__u64 i, void *data)
{
    struct range_walk *w = data;
    __u64 bit = 1ULL << (i & 63);
    if ((w->todo & bit) && (w->v < w->mins[i & 63] || w->v > w->maxs[i & 63]))
        w->res &= ~bit;
    return 0;
}

/* Clear the policies among `ranged` whose [min, max] does not hold v. */
static __always_inline __u64 range_pass(__u64 res, __u64 ranged, __u32 *mins, __u32 *maxs,
                                        __u32 v)
{
    struct range_walk w = {.mins = mins, .maxs = maxs, .todo = res & ranged, .res = res, .v = v};
    if (!w.todo)
        return res;
    bpf_loop(MAX_POLICIES, range_step, &w, 0);
    return w.res;
}

/* Which of `policies` a task is in scope for: the current task (h == NULL), or
 * the task a recorded header describes (a socket's owner, re-scoped after a
 * policy reload: bpf/common/net.h). A global function: the verifier checks it
 * once rather than at every call site. */
__noinline __u64 scope_match_task(__u32 version, __u64 policies, struct event_header *h)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    __u32 slot = version & 1;
    struct scope_config *c = bpf_map_lookup_elem(&scope_cfg, &slot);
    if (!c || !policies)
        return 0;
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tgid = h ? h->host_pid : pid_tgid >> 32;
    __u32 tid = h ? h->host_tid : (__u32)pid_tgid;
    if (tgid == c->self_pid)
        return 0;

    __u64 res = policies;
    if (c->has_filter[SCOPE_COMM] & res) {
        struct scope_comm_key k = {.slot = slot};
        if (h)
            __builtin_memcpy(k.comm, h->comm, sizeof(k.comm));
        else
            bpf_get_current_comm(k.comm, sizeof(k.comm));
        res &= field_pass(bpf_map_lookup_elem(&scope_comm, &k), c->has_filter[SCOPE_COMM],
                          c->has_eq[SCOPE_COMM]);
    }
    res = num_field_pass(c, slot, SCOPE_PID, tgid, res);
    res = num_field_pass(c, slot, SCOPE_TID, tid, res);
    if (res & (c->has_filter[SCOPE_UID] | c->uid_range)) {
        __u32 uid = h ? h->uid : (__u32)bpf_get_current_uid_gid();
        res = num_field_pass(c, slot, SCOPE_UID, uid, res);
        res = range_pass(res, c->uid_range, c->uid_min, c->uid_max, uid);
    }
    res = range_pass(res, c->pid_range, c->pid_min, c->pid_max, tgid);
    if (res & c->has_filter[SCOPE_MNTNS])
        res = num_field_pass(c, slot, SCOPE_MNTNS,
                             h ? h->mnt_ns : KPTR(struct task_struct, t)->nsproxy->mnt_ns->ns.inum, res);
    if (res & c->has_filter[SCOPE_PIDNS])
        res = num_field_pass(c, slot, SCOPE_PIDNS, h ? h->pid_ns : task_pid_ns(t), res);
    if (res & c->new_pid) {
        __u64 start = h ? h->leader_start_time : KPTR(struct task_struct, t)->group_leader->start_boottime;
        if (start <= c->start_time)
            res &= ~c->new_pid;
    }
    __u64 by_container = c->container | c->not_container | c->container_new | c->container_started;
    if (res & by_container) {
        __u64 cgid = h ? h->cgroup_id : bpf_get_current_cgroup_id();
        __u8 *st = bpf_map_lookup_elem(&containers_map, &cgid);
        __u8 state = st ? *st : 0;
        if (state)
            res &= ~c->not_container;
        else
            res &= ~c->container;
        if (state != CONTAINER_CREATED && state != CONTAINER_STARTED)
            res &= ~c->container_new;
        if (state != CONTAINER_STARTED)
            res &= ~c->container_started;
    }
    if ((policies & (c->tree | c->follow))) {
        struct follow_bits *followed = bpf_map_lookup_elem(&follow_map, &tgid);
        __u64 f = followed ? followed->bits[slot & 1] : 0;
        res &= ~c->tree | f;          /* tree=PID: only that tree */
        res |= f & c->follow & policies; /* follow: descendants match whatever else */
    }
    return res;
}

static __always_inline __u64 scope_match(__u32 version, __u64 policies)
{
    return scope_match_task(version, policies, NULL);
}

static __always_inline struct event_fetch *fetch_cfg(__u32 id)
{
    return bpf_map_lookup_elem(&event_fetch, &id);
}

/* Arguments of a syscall, fetched as event_fetch says. */
static __always_inline __u32 put_syscall_args(struct event_buf *b, struct event_fetch *ef,
                                              __u64 *args)
{
    __u32 off = 0;
#pragma unroll
    for (int i = 0; i < 6; i++) {
        __u8 kind = ef->arg_kinds[i];
        if (kind == ARG_NONE)
            break;
        void *p = (void *)args[i];
        if (kind == ARG_STR)
            off = put_str(b, off, i, p, 1);
        else if (kind == ARG_STR_ARR)
            off = put_str_arr(b, off, i, p);
        else if (kind == ARG_SOCKADDR)
            off = put_sockaddr(b, off, i, p);
        else if (kind == ARG_INT_PAIR)
            off = put_bytes(b, off, i, ARG_INT_PAIR, p, 8, 1);
        else
            off = put_int(b, off, i, args[i]);
    }
    return off;
}

static __always_inline void emit_syscall(struct task_struct *t, struct event_fetch *ef, __u32 id,
                                         __u64 *args, __u64 matched, __u32 version, __s64 ret)
{
    struct event_buf *b = scratch_buf();
    if (!b)
        return;
    fill_header(&b->hdr, t, id, id, version);
    b->hdr.matched_policies = matched;
    b->hdr.retval = ret;
    __u32 off = put_syscall_args(b, ef, args);
    submit(b, off);
}

/* sys_enter / sys_exit as events of their own (Tracee's 712/713). */
static __always_inline void emit_raw_syscall(struct task_struct *t, __u32 version,
                                             __u32 event_id, long id)
{
    __u64 policies = event_policies(version, event_id);
    if (!policies)
        return;
    __u64 matched = scope_match(version, policies);
    if (!matched)
        return;
    struct event_buf *b = scratch_buf();
    if (!b)
        return;
    fill_header(&b->hdr, t, event_id, id, version);
    b->hdr.matched_policies = matched;
    submit(b, put_int(b, 0, 0, id));
}

/* A 32-bit (ia32) syscall: numbered differently, so not ours to decode (yet). */
static __always_inline int is_compat(struct task_struct *t)
{
    return KPTR(struct task_struct, t)->thread_info.status & TS_COMPAT;
}

/* The x86-64 syscall argument registers, in order. */
static __always_inline void syscall_args(struct pt_regs *regs, __u64 *args)
{
    args[0] = regs->di;
    args[1] = regs->si;
    args[2] = regs->dx;
    args[3] = regs->r10;
    args[4] = regs->r8;
    args[5] = regs->r9;
}

/* tp_btf, not raw_tracepoint: the regs pointer is typed, so its fields are read
 * with plain loads instead of a bpf_probe_read_kernel call each. */
SEC("tp_btf/sys_enter")
int trace_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    long id = ctx->args[1];
    if (id < 0 || id >= EVENT_SYS_ENTER)
        return 0;
    __u32 key = id;
    __u8 *interest = bpf_map_lookup_elem(&syscall_interest, &key);
    if (!interest || !(*interest & INTEREST_ENTER))
        return 0;
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    __u32 version = active_version();
    emit_raw_syscall(t, version, EVENT_SYS_ENTER, id);

    if ((id == NR_EXECVE || id == NR_EXECVEAT) &&
        event_policies(version, EVENT_SCHED_PROCESS_EXEC)) {
        __u32 tid = (__u32)bpf_get_current_pid_tgid();
        char comm[TASK_COMM_LEN] = {};
        bpf_get_current_comm(comm, sizeof(comm));
        bpf_map_update_elem(&prev_comm_map, &tid, comm, BPF_ANY);
    }
    /* A set-uid/set-gid exec changes credentials: remember them before. */
    if ((id == NR_EXECVE || id == NR_EXECVEAT) && event_policies(version, EVENT_COMMIT_CREDS)) {
        __u32 tid = (__u32)bpf_get_current_pid_tgid();
        struct before_state st = {};
        read_cred(t, &st.cred);
        bpf_map_update_elem(&before_map, &tid, &st, BPF_ANY);
    }

    /* The syscall's own event, and the security event built from it. */
    struct event_fetch *ef = fetch_cfg(id);
    if (!ef)
        return 0;
    __u32 derived = ef->derived;
    __u64 own_pol = event_policies(version, id);
    __u64 dpol = 0; /* FETCH_AT_EXIT: scoped and built at sys_exit, nothing saved */
    if (derived && !(ef->flags & FETCH_AT_EXIT))
        dpol = event_policies(version, derived);
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    /* --capture write: every policy's scope; compiled out unless it is on. */
    __u64 cap = 0;
    if (cfg_capture_write && (ef->flags & FETCH_CAPTURE))
        cap = event_policies(version, EVENT_CAPTURE_FILE_WRITE);
    /* Only the derived event wanted, and the arguments rule it out (most mmap and
     * mprotect calls): done before the scope is matched. */
    if (!(own_pol | cap) && dpol && args_rule_out(derived, id, regs->dx))
        return 0;
    __u64 policies = own_pol | dpol | cap;
    if (!policies)
        return 0;
    if (is_compat(t))
        return 0;
    __u64 matched = scope_match(version, policies);
    if (!matched)
        return 0;

    __u64 args[6];
    syscall_args(regs, args);

    if (ef->submit_on_enter) {
        __u64 own = matched & own_pol;
        if (own)
            emit_syscall(t, ef, id, args, own, version, 0);
        /* exec: still save, for the process_execute_failed of a call that fails */
        if (!(matched & dpol))
            return 0;
    }
    __s64 state = derived_enter_state(t, derived, id, args);
    if (cfg_capture_write && (cap &= matched)) {
        struct file *wf = fd_file(t, args[0]); /* only regular files are captured */
        if (!wf || (file_mode(wf) & 0170000) != S_IFREG)
            cap = 0;
    }
    /* Nothing to save when only the derived event was wanted and it cannot happen. */
    if (state == STATE_NO_EVENT && !(matched & own_pol) && !cap)
        return 0;

    __u64 own = ef->submit_on_enter ? 0 : matched & own_pol; /* exec: sent */
    __u64 sec = matched & dpol;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct saved_args *sa = bpf_map_lookup_elem(&task_args, &tid);
    if (sa) {
        __builtin_memcpy(sa->args, args, sizeof(args));
        sa->own = own;
        sa->sec = sec;
        sa->cap = cap;
        sa->version = version;
        sa->state = state;
        sa->syscall = id;
        return 0;
    }
    struct saved_args fresh = {.own = own, .sec = sec, .cap = cap, .syscall = id,
                               .version = version, .state = state};
    __builtin_memcpy(fresh.args, args, sizeof(args));
    if (bpf_map_update_elem(&task_args, &tid, &fresh, BPF_ANY)) /* table full: say so */
        count_stat(STAT_LOST_OTHER, (own_pol & matched) ? id
                                    : sec ? derived : EVENT_CAPTURE_FILE_WRITE);
    return 0;
}

/* The security event derived from a syscall (security.h), with its own
 * policies. A global function: the builders are verified once, apart from
 * the sys_exit program, which would otherwise grow past the verifier's limit. */
__noinline int emit_derived(struct exit_call *dc)
{
    if (!dc)
        return 0;
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    struct event_buf *b = scratch_buf();
    if (!b)
        return 0;
    fill_header(&b->hdr, t, dc->derived, dc->id, dc->version);
    b->hdr.matched_policies = dc->matched;
    b->hdr.retval = dc->ret;
    __u32 off = 0;
    if (build_derived(b, &off, t, dc))
        submit(b, off);
    return 0;
}

#include "common/net.h"

#define NR_SOCKET 41
#define NR_CONNECT 42
#define NR_ACCEPT 43
#define NR_ACCEPT4 288

/* socket, accept, accept4, connect, bind, listen: the caller owns the socket. */
static __always_inline void sock_owner_exit(struct task_struct *t, __u32 version, long id,
                                            struct pt_regs *regs, long ret)
{
    if (ret < 0 && id != NR_CONNECT) /* a non-blocking connect returns -EINPROGRESS */
        return;
    if (is_compat(t))
        return; /* a 32-bit call: these numbers are other syscalls there */
    __u64 policies = net_policies(version);
    if (!policies)
        return;
    __s64 fd = (id == NR_SOCKET || id == NR_ACCEPT || id == NR_ACCEPT4) ? ret
                                                                      : regs->di;
    track_socket(t, fd, version, scope_match(version, policies));
}

static __always_inline void exit_saved(struct task_struct *t, struct event_fetch *ef, long id,
                                       struct saved_args *sa, __s64 ret);
static __always_inline void derive_at_exit(struct task_struct *t, __u32 derived, long id,
                                           struct pt_regs *regs, __s64 ret, __u32 version);

SEC("tp_btf/sys_exit")
int trace_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    long id = regs->orig_ax;
    if (id < 0 || id >= EVENT_SYS_ENTER)
        return 0;
    __u32 key = id;
    __u8 *interest = bpf_map_lookup_elem(&syscall_interest, &key);
    if (!interest ||
        !(*interest & (INTEREST_EXIT | INTEREST_AT_EXIT | INTEREST_RAW_EXIT | INTEREST_SOCK)))
        return 0;
    __u8 wants = *interest;
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    __u32 version = active_version();
    if (wants & INTEREST_RAW_EXIT)
        emit_raw_syscall(t, version, EVENT_SYS_EXIT, id);
    if (wants & INTEREST_SOCK)
        sock_owner_exit(t, version, id, regs, ctx->args[1]);

    /* Only syscalls some set since start saved calls of go on to the per-thread
     * hash lookup: the call may have entered under an older set. */
    struct event_fetch *ef = fetch_cfg(id);
    if (!ef || (ef->submit_on_enter && !ef->derived))
        return 0;
    __u32 derived = ef->derived;
    __s64 ret = ctx->args[1];
    if (wants & INTEREST_EXIT) {
        __u32 tid = (__u32)bpf_get_current_pid_tgid();
        struct saved_args *sa = bpf_map_lookup_elem(&task_args, &tid);
        if (sa && sa->syscall == id)
            exit_saved(t, ef, id, sa, ret);
    }
    if ((wants & INTEREST_AT_EXIT) && derived && (ef->flags & FETCH_AT_EXIT) && ret >= 0)
        derive_at_exit(t, derived, id, regs, ret, version);
    return 0;
}

/* A call saved at sys_enter: its own event, the derived event and the write
 * capture, each for the policies fixed at entry. */
static __always_inline void exit_saved(struct task_struct *t, struct event_fetch *ef, long id,
                                       struct saved_args *sa, __s64 ret)
{
    __u32 derived = (ef->flags & FETCH_AT_EXIT) ? 0 : ef->derived;
    sa->syscall = -1; /* the entry stays this thread's: read from it in place */
    __u32 ver = sa->version;
    __u64 own = sa->own, sec = sa->sec, cap = sa->cap;
    __s64 state = sa->state;
    if (own)
        emit_syscall(t, ef, id, sa->args, own, ver, ret);
    if (!(derived && sec) && !(cfg_capture_write && cap && ret > 0))
        return;
    struct exit_call *c = exit_call_buf();
    if (!c)
        return;
    __builtin_memcpy(c->args, sa->args, sizeof(c->args));
    c->ret = ret;
    c->id = id;
    c->version = ver;
    if (derived && sec) {
        c->matched = sec;
        c->state = state;
        c->derived = derived;
        emit_derived(c);
    }
    if (cfg_capture_write && cap && ret > 0) {
        c->matched = cap;
        emit_capture_write(c);
    }
}

/* FETCH_AT_EXIT: scoped now, under the active set; the arguments are read from the
 * registers, which the kernel leaves as the caller set them for these calls (a
 * tracer cannot change them between the two tracepoints: ptrace stops come before
 * sys_enter and after sys_exit). */
static __always_inline void derive_at_exit(struct task_struct *t, __u32 derived, long id,
                                           struct pt_regs *regs, __s64 ret, __u32 version)
{
    __u64 policies = event_policies(version, derived);
    if (!policies)
        return;
    if (is_compat(t))
        return; /* a 32-bit call: these numbers are other syscalls there */
    /* most mmaps: not W+X (the call is made for that event only, not for every open) */
    if (derived == EVENT_MEM_PROT_ALERT && args_rule_out(derived, id, regs->dx))
        return;
    __u64 matched = scope_match(version, policies);
    if (!matched)
        return;
    struct exit_call *c = exit_call_buf();
    if (!c)
        return;
    syscall_args(regs, c->args);
    c->matched = matched;
    c->ret = ret;
    c->state = 0;
    c->id = id;
    c->derived = derived;
    c->version = version;
    emit_derived(c);
}

static __always_inline struct event_buf *begin_event(struct task_struct *t, __u32 event_id);
static __always_inline struct event_buf *begin_signal_event(struct task_struct *t, __u32 event_id,
                                                            int signal);

static __always_inline void clone_ns_event(struct task_struct *t, struct task_struct *parent,
                                           struct task_struct *child)
{
    /* The namespaces read here all hang off nsproxy: one shared means none changed. */
    if (KPTR(struct task_struct, child)->nsproxy == KPTR(struct task_struct, parent)->nsproxy)
        return;
    __u32 before[6], now[6];
    read_ns(parent, before);
    read_ns(child, now);
    if (!words_differ(now, before, 3))
        return;
    struct event_buf *b = begin_event(t, EVENT_SWITCH_TASK_NS);
    if (!b)
        return;
    __u32 off = put_int(b, 0, 0, BPF_CORE_READ(child, pid));
#pragma unroll
    for (int i = 0; i < 6; i++)
        off = put_int(b, off, i + 1, now[i] != before[i] ? now[i] : 0);
    submit(b, off);
}

/* Copy a fork participant's ids as five ints: tid, ns tid, pid, ns pid, start. */
static __always_inline __u32 put_task_ids(struct event_buf *b, __u32 off, __u8 idx,
                                          struct task_struct *t)
{
    struct task_struct *tk = KPTR(struct task_struct, t);
    struct task_struct *leader = tk->group_leader;
    off = put_int(b, off, idx, tk->pid);
    off = put_int(b, off, idx + 1, task_ns_tid(t));
    off = put_int(b, off, idx + 2, tk->tgid);
    off = put_int(b, off, idx + 3, task_ns_tid(leader));
    return put_int(b, off, idx + 4, task_start_time(t));
}

SEC("raw_tracepoint/sched_process_fork")
int trace_sched_process_fork(struct bpf_raw_tracepoint_args *ctx)
{
    struct task_struct *parent = (struct task_struct *)ctx->args[0];
    struct task_struct *child = (struct task_struct *)ctx->args[1];
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    __u32 version = active_version();
    __u32 slot = version & 1;
    struct scope_config *c = bpf_map_lookup_elem(&scope_cfg, &slot);

    /* A new process inherits what its parent is followed for, in both slots
     * (a reload may be switching sets right now), plus the active set's follow
     * policies its parent is in scope for. */
    struct task_struct *ck = KPTR(struct task_struct, child);
    __u32 child_pid = ck->pid;
    __u32 child_tgid = ck->tgid;
    if (child_pid == child_tgid) {
        __u32 ptgid = KPTR(struct task_struct, parent)->tgid;
        struct follow_bits *pf = bpf_map_lookup_elem(&follow_map, &ptgid);
        struct follow_bits fb = {};
        if (pf) {
            fb.bits[0] = pf->bits[0];
            fb.bits[1] = pf->bits[1];
        }
        if (c && c->follow) {
            __u64 mine = scope_match(version, c->follow);
            if (slot)
                fb.bits[1] |= mine;
            else
                fb.bits[0] |= mine;
        }
        if (fb.bits[0] | fb.bits[1])
            bpf_map_update_elem(&follow_map, &child_tgid, &fb, BPF_ANY);
    }

    /* clone(CLONE_NEW*): the child starts in namespaces its parent is not in. */
    if (event_policies(version, EVENT_SWITCH_TASK_NS))
        clone_ns_event(t, parent, child);

    __u64 matched = scope_match(version, event_policies(version, EVENT_SCHED_PROCESS_FORK));
    /* The process tree needs new processes, not threads. */
    int signal = (cfg_signals & SIGNAL_PROCTREE) && child_pid == child_tgid;
    if (!matched && !signal)
        return 0;
    struct event_buf *b = scratch_buf();
    if (!b)
        return 0;
    fill_header(&b->hdr, t, EVENT_SCHED_PROCESS_FORK, -1, version);
    b->hdr.matched_policies = matched;
    if (signal)
        b->hdr.flags |= EV_FLAG_SIGNAL;
    __u32 off;
    if (!matched) {
        /* Only the process tree wants it: the child and its parent process, no more. */
        struct task_struct *pp = ck->real_parent->group_leader;
        off = put_int(b, 0, 5, child_pid);                                   /* child_tid */
        off = put_int(b, off, 7, child_tgid);                                /* child_pid */
        off = put_int(b, off, 9, ck->start_boottime);                        /* start_time */
        off = put_int(b, off, 12, pp->tgid);                                 /* parent_process_pid */
        off = put_int(b, off, 14, pp->start_boottime);                       /* parent_process_start_time */
        submit(b, off);
        return 0;
    }
    off = put_task_ids(b, 0, 0, parent);                                     /* parent_* */
    off = put_task_ids(b, off, 5, child);                                    /* child_*, start_time */
    off = put_task_ids(b, off, 10, ck->real_parent->group_leader);          /* parent_process_* */
    off = put_task_ids(b, off, 15, ck->group_leader);                       /* leader_* */
    submit(b, off);
    return 0;
}

#define AT_BASE 7

/* The ELF interpreter (ld.so) the new image runs under: the kernel mapped it
 * at AT_BASE, so the VMA there names its file. 0 args when there is none. */
static __always_inline __u32 put_elf_interpreter(struct event_buf *b, __u32 off, struct mm_struct *mm)
{
    __u64 base = 0;
#pragma clang loop unroll(disable)
    for (int i = 0; i < 24; i++) {
        unsigned long pair[2] = {};
        bpf_core_read(pair, sizeof(pair), &mm->saved_auxv[2 * i]);
        if (pair[0] == AT_BASE) {
            base = pair[1];
            break;
        }
        if (pair[0] == 0) /* AT_NULL: the end */
            break;
    }
    if (!base)
        return off;
    struct file *f = find_vma(base).file;
    if (!f)
        return off;
    struct inode *inode = BPF_CORE_READ(f, f_inode);
    off = put_path(b, off, 6, &f->f_path);            /* interpreter_pathname */
    off = put_file_identity(b, off, 7, inode);        /* interpreter_dev, interpreter_inode */
    return put_int(b, off, 9, inode_ctime(inode));    /* interpreter_ctime */
}

/* commit_creds for an exec that changed credentials (set-uid/set-gid binaries). */
static __always_inline void exec_creds_event(struct task_struct *t, __u32 tid)
{
    struct before_state *before = bpf_map_lookup_elem(&before_map, &tid);
    if (!before)
        return;
    struct slim_cred now = {};
    read_cred(t, &now);
    if (words_differ(&now, &before->cred, sizeof(now) / 8)) {
        struct event_buf *b = begin_event(t, EVENT_COMMIT_CREDS);
        if (b) {
            __u32 off = put_bytes(b, 0, 0, ARG_BYTES, &before->cred, sizeof(now), 0);
            off = put_bytes(b, off, 1, ARG_BYTES, &now, sizeof(now), 0);
            submit(b, off);
        }
    }
    bpf_map_delete_elem(&before_map, &tid);
}

/* Read a span of the new image's memory (argv or env area) as one blob. */
static __always_inline __u32 put_mm_blob(struct event_buf *b, __u32 off, __u8 idx,
                                         unsigned long start, unsigned long end)
{
    __u64 span = end > start ? end - start : 0;
    __u8 truncated = span > MAX_BLOB;
    if (!has_room(b, off))
        return off;
    __u32 len = truncated ? MAX_BLOB : span;
    asm volatile("" : "+r"(len)); /* keep the bound below visible to the verifier */
    len &= (MAX_BLOB * 2 - 1);
    if (len > MAX_BLOB)
        len = MAX_BLOB;
    if (bpf_probe_read_user(&b->args[at(off + 5)], len, (void *)start))
        len = 0;
    b->args[at(off)] = idx;
    b->args[at(off + 1)] = ARG_STR_BLOB;
    put_u16(b, off + 2, len);
    b->args[at(off + 4)] = truncated;
    b->hdr.argnum++;
    return off + 5 + len;
}

SEC("raw_tracepoint/sched_process_exec")
int trace_sched_process_exec(struct bpf_raw_tracepoint_args *ctx)
{
    struct task_struct *t = (struct task_struct *)ctx->args[0];
    struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
    /* The thread that called exec: a non-leader thread took the leader's pid
     * since (de_thread), but the comm was saved under its own tid. */
    __u32 tid = ctx->args[1];
    char *prev = bpf_map_lookup_elem(&prev_comm_map, &tid);
    forget_task_ctx(); /* its pid, tid and group leader may have changed (task.h) */

    /* The first exec in a container created while we run: it has started. */
    __u64 cgid = bpf_get_current_cgroup_id();
    __u8 *cstate = bpf_map_lookup_elem(&containers_map, &cgid);
    if (cstate && *cstate == CONTAINER_CREATED) {
        __u8 started = CONTAINER_STARTED;
        bpf_map_update_elem(&containers_map, &cgid, &started, BPF_EXIST);
    }

    __u32 version = active_version();
    __u64 matched = scope_match(version, event_policies(version, EVENT_SCHED_PROCESS_EXEC));
    int signal = cfg_signals & SIGNAL_PROCTREE;
    if (!matched && !signal)
        goto out;
    struct event_buf *b = scratch_buf();
    if (!b)
        goto out;
    fill_header(&b->hdr, t, EVENT_SCHED_PROCESS_EXEC, -1, version);
    b->hdr.matched_policies = matched;
    if (signal)
        b->hdr.flags |= EV_FLAG_SIGNAL;

    struct file *file = BPF_CORE_READ(bprm, file);
    struct inode *inode = BPF_CORE_READ(file, f_inode);
    const char *filename = BPF_CORE_READ(bprm, filename);
    const char *interp = BPF_CORE_READ(bprm, interp);
    __u32 off = put_str(b, 0, 0, filename, 0);                         /* cmdpath */
    off = put_path_filtered(b, off, 1, &file->f_path, 2);              /* pathname */
    if (!b->hdr.matched_policies && !signal)
        goto out; /* every policy's pathname filter said no */
    off = put_int(b, off, 2, BPF_CORE_READ(inode, i_sb, s_dev));       /* dev */
    off = put_int(b, off, 3, BPF_CORE_READ(inode, i_ino));             /* inode */
    /* The top bits of i_ctime_nsec are flags (multigrain timestamps). */
    __u64 ctime = BPF_CORE_READ(inode, i_ctime_sec) * 1000000000ULL +
                  (BPF_CORE_READ(inode, i_ctime_nsec) & 0x3fffffff);
    off = put_int(b, off, 4, ctime);                                   /* ctime */
    off = put_int(b, off, 5, BPF_CORE_READ(inode, i_mode));            /* inode_mode */
    struct mm_struct *mm = BPF_CORE_READ(t, mm);
    off = put_elf_interpreter(b, off, mm);                             /* interpreter_* */
    off = put_mm_blob(b, off, 10, BPF_CORE_READ(mm, arg_start), BPF_CORE_READ(mm, arg_end)); /* argv */
    off = put_str(b, off, 11, interp, 0);                              /* interp */

    /* stdin: the type of whatever fd 0 is (tty, pipe, file, socket). */
    struct file **fds = BPF_CORE_READ(t, files, fdt, fd);
    struct file *in = NULL;
    bpf_core_read(&in, sizeof(in), &fds[0]);
    __u16 stdin_mode = 0;
    if (in)
        stdin_mode = BPF_CORE_READ(in, f_inode, i_mode) & S_IFMT;
    off = put_int(b, off, 12, stdin_mode);                             /* stdin_type */
    if (in)
        off = put_path(b, off, 13, &in->f_path);                       /* stdin_path */
    __u32 pflags = BPF_CORE_READ(t, real_parent, flags);
    off = put_int(b, off, 14, (pflags & PF_KTHREAD) != 0);             /* invoked_from_kernel */
    off = put_str(b, off, 15, prev, 0);                                /* prev_comm */
    __u32 slot = version & 1;
    struct scope_config *sc = bpf_map_lookup_elem(&scope_cfg, &slot);
    if (sc && sc->exec_env)
        off = put_mm_blob(b, off, 16, BPF_CORE_READ(mm, env_start), BPF_CORE_READ(mm, env_end));
    struct fs_struct *fs = BPF_CORE_READ(t, fs);
    off = put_path(b, off, 17, &fs->pwd);                              /* pwd */
    submit(b, off);
out:
    if (prev)
        bpf_map_delete_elem(&prev_comm_map, &tid);
    /* The new image starts with no syscall in flight: drop what the exec'ing
     * thread left under its old tid, and what a leader killed by de_thread
     * left under the tid it now has. */
    __u32 cur = (__u32)bpf_get_current_pid_tgid();
    if (tid != cur)
        forget_saved(tid);
    forget_saved(cur);
    exec_creds_event(t, tid);
    return 0;
}

SEC("raw_tracepoint/sched_process_exit")
int trace_sched_process_exit(struct bpf_raw_tracepoint_args *ctx)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tid = (__u32)pid_tgid, tgid = pid_tgid >> 32;
    int group_dead = KPTR(struct task_struct, t)->signal->live.counter == 0;

    __u32 version = active_version();
    __u64 matched = scope_match(version, event_policies(version, EVENT_SCHED_PROCESS_EXIT));
    int signal = (cfg_signals & SIGNAL_PROCTREE) && group_dead;
    {
        struct event_buf *b = matched || signal ? scratch_buf() : NULL;
        if (b) {
            fill_header(&b->hdr, t, EVENT_SCHED_PROCESS_EXIT, -1, version);
            b->hdr.matched_policies = matched;
            if (signal)
                b->hdr.flags |= EV_FLAG_SIGNAL;
            __u32 code = KPTR(struct task_struct, t)->exit_code;
            __u32 off = put_int(b, 0, 0, (code >> 8) & 0xff); /* exit_code */
            off = put_int(b, off, 1, code & 0x7f);            /* signal_code */
            off = put_int(b, off, 2, group_dead);             /* process_group_exit */
            submit(b, off);
        }
    }
    forget_saved(tid);
    /* Looked up first: a delete takes the bucket's lock even when there is nothing
     * to delete, and most processes are followed by no policy. */
    if (group_dead && bpf_map_lookup_elem(&follow_map, &tgid))
        bpf_map_delete_elem(&follow_map, &tgid);
    return 0;
}

/* Start an event of a kernel tracepoint when a policy wants it for the
 * current task: the scratch buffer with its header filled, or NULL. */
static __always_inline struct event_buf *begin_signal_event(struct task_struct *t, __u32 event_id,
                                                            int signal)
{
    __u32 version = active_version();
    __u64 matched = scope_match(version, event_policies(version, event_id));
    if (!matched && !signal)
        return NULL;
    struct event_buf *b = scratch_buf();
    if (!b)
        return NULL;
    fill_header(&b->hdr, t, event_id, -1, version);
    b->hdr.matched_policies = matched;
    if (signal)
        b->hdr.flags |= EV_FLAG_SIGNAL;
    return b;
}

static __always_inline struct event_buf *begin_event(struct task_struct *t, __u32 event_id)
{
    return begin_signal_event(t, event_id, 0);
}

SEC("raw_tracepoint/task_rename")
int trace_task_rename(struct bpf_raw_tracepoint_args *ctx)
{
    struct task_struct *task = (struct task_struct *)ctx->args[0];
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    if (task != t)
        return 0; /* renames of other tasks (/proc/PID/comm writes) are not ours to attribute */
    struct event_buf *b = begin_event(t, EVENT_TASK_RENAME);
    if (!b)
        return 0;
    __u32 off = put_str(b, 0, 0, &task->comm, 0);                 /* old_name: not yet replaced */
    off = put_str(b, off, 1, (const char *)ctx->args[1], 0);      /* new_name */
    submit(b, off);
    return 0;
}

static __always_inline int cgroup_dir_event(struct bpf_raw_tracepoint_args *ctx, __u32 event_id)
{
    struct cgroup *cgrp = (struct cgroup *)ctx->args[0];
    /* Containers are found in the default (v2) hierarchy: the one whose
     * ids bpf_get_current_cgroup_id() returns. */
    int signal = (cfg_signals & SIGNAL_CONTAINERS) && BPF_CORE_READ(cgrp, root, hierarchy_id) == 0;
    struct event_buf *b = begin_signal_event((struct task_struct *)bpf_get_current_task(), event_id,
                                             signal);
    if (!b)
        return 0;
    __u32 off = put_int(b, 0, 0, BPF_CORE_READ(cgrp, kn, id));         /* cgroup_id */
    off = put_str(b, off, 1, (const char *)ctx->args[1], 0);           /* cgroup_path */
    off = put_int(b, off, 2, BPF_CORE_READ(cgrp, root, hierarchy_id)); /* hierarchy_id */
    submit(b, off);
    return 0;
}

SEC("raw_tracepoint/cgroup_mkdir")
int trace_cgroup_mkdir(struct bpf_raw_tracepoint_args *ctx)
{
    return cgroup_dir_event(ctx, EVENT_CGROUP_MKDIR);
}

SEC("raw_tracepoint/cgroup_rmdir")
int trace_cgroup_rmdir(struct bpf_raw_tracepoint_args *ctx)
{
    return cgroup_dir_event(ctx, EVENT_CGROUP_RMDIR);
}

SEC("raw_tracepoint/cgroup_attach_task")
int trace_cgroup_attach_task(struct bpf_raw_tracepoint_args *ctx)
{
    struct task_struct *task = (struct task_struct *)ctx->args[2];
    struct event_buf *b = begin_event((struct task_struct *)bpf_get_current_task(),
                                      EVENT_CGROUP_ATTACH_TASK);
    if (!b)
        return 0;
    __u32 off = put_str(b, 0, 0, (const char *)ctx->args[1], 0);  /* cgroup_path */
    off = put_str(b, off, 1, &task->comm, 0);                    /* comm */
    off = put_int(b, off, 2, BPF_CORE_READ(task, pid));           /* pid */
    submit(b, off);
    return 0;
}
