/* Scope filters, evaluated in the kernel for up to 64 policies at once.
 *
 * Each policy is one bit. For every filtered field a lookup of the task's
 * value returns which policies list it with '=' and which with '!='; ranges
 * (uid, pid) are per policy. Mirrored by src/pytracee/policy/kernel_maps.py.
 */
#ifndef PYTRACEE_SCOPE_H
#define PYTRACEE_SCOPE_H

enum scope_field {
    SCOPE_COMM = 0,
    SCOPE_PID = 1,   /* host tgid */
    SCOPE_TID = 2,   /* host tid */
    SCOPE_UID = 3,
    SCOPE_MNTNS = 4,
    SCOPE_PIDNS = 5,
    SCOPE_NFIELDS = 6,
};

/* Value of the equality maps: policies that name this key with '=' / '!='. */
struct scope_eq {
    __u64 equal_in;
    __u64 not_equal_in;
};

struct scope_num_key {
    __u16 slot;
    __u16 field;
    __u32 value;
};

struct scope_comm_key {
    __u32 slot;
    char comm[TASK_COMM_LEN];
};

struct scope_config {
    __u64 has_filter[SCOPE_NFIELDS]; /* policies with any filter on the field */
    __u64 has_eq[SCOPE_NFIELDS];     /* policies with an '=' list on the field */
    __u64 uid_range;                 /* policies with uid min/max */
    __u64 pid_range;                 /* policies with pid min/max */
    __u64 new_pid;                   /* policies with pid=new */
    __u64 follow;                    /* policies with follow: descendants match too */
    __u64 tree;                      /* policies with tree=PID: only that tree matches */
    __u64 container;                 /* policies for tasks in containers only */
    __u64 not_container;             /* policies for host tasks only */
    __u64 container_new;             /* containers created after pytracee started */
    __u64 container_started;         /* containers past their first exec */
    __u64 start_time;                /* pytracee start (boot ns), for pid=new */
    __u32 self_pid;                  /* pytracee's own tgid: never traced */
    __u32 exec_env;                  /* send env with sched_process_exec (a policy set's choice:
                                      * signatures selected by a reload may need it) */
    __u32 uid_min[64];
    __u32 uid_max[64];
    __u32 pid_min[64];
    __u32 pid_max[64];
};

/* Containers, by the cgroup id of their (v2) cgroup. User space adds them
 * (at start: EXISTED; on cgroup_mkdir: CREATED); the first exec inside a
 * CREATED one makes it STARTED. Not versioned: it describes the host, not policy. */
enum container_state {
    CONTAINER_EXISTED = 1,
    CONTAINER_CREATED = 2,
    CONTAINER_STARTED = 3,
};

#endif
