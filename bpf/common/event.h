/* The record every program sends to user space, and the config it reads.
 *
 * Mirrored by src/pytracee/events/wire.py; tests/unit/test_wire_layout.py reads
 * the BTF of the compiled object and fails when the two drift.
 */
#ifndef PYTRACEE_EVENT_H
#define PYTRACEE_EVENT_H

#define TASK_COMM_LEN 16
#define UTS_LEN 64 /* full nodename (Tracee cuts it to 16: issue #3840) */

#define MAX_EVENT_ID 1024   /* syscalls and kernel events have ids below this */
#define MAX_POLICIES 64

/* Event ids that are not syscalls (Tracee's numbering, pkg/events/core.go). */
#define EVENT_SYS_ENTER 712
#define EVENT_SYS_EXIT 713
#define EVENT_SCHED_PROCESS_FORK 714
#define EVENT_SCHED_PROCESS_EXEC 715
#define EVENT_SCHED_PROCESS_EXIT 716
#define EVENT_MAGIC_WRITE 727
#define EVENT_SECURITY_FILE_OPEN 732
#define EVENT_SECURITY_SOCKET_CREATE 734
#define EVENT_SECURITY_SOCKET_LISTEN 735
#define EVENT_SECURITY_SOCKET_CONNECT 736
#define EVENT_SECURITY_SOCKET_ACCEPT 737
#define EVENT_SECURITY_SOCKET_BIND 738
#define EVENT_SOCKET_DUP 749
#define EVENT_MEM_PROT_ALERT 724
#define EVENT_COMMIT_CREDS 725
#define EVENT_SWITCH_TASK_NS 726
#define EVENT_CGROUP_ATTACH_TASK 728
#define EVENT_CGROUP_MKDIR 729
#define EVENT_CGROUP_RMDIR 730
#define EVENT_SECURITY_INODE_UNLINK 733
#define EVENT_SECURITY_SB_MOUNT 740
#define EVENT_SECURITY_INODE_MKNOD 744
#define EVENT_SECURITY_INODE_SYMLINK 746
#define EVENT_SECURITY_INODE_RENAME 768
#define EVENT_TASK_RENAME 767
#define EVENT_PROCESS_EXECUTE_FAILED 779
#define EVENT_SECURITY_SB_UMOUNT 794
#define EVENT_SECURITY_INODE_LINK 1000 /* pytracee's own: hard links (link, linkat) */
#define EVENT_CAPTURE_FILE_WRITE 1001  /* internal: bytes written to regular files, for --capture write */

/* Fields that change per event come first; the task context after them is
 * one contiguous span that user space interns (same task -> same bytes). */
struct event_header {
    __u64 ts;               /* bpf_ktime_get_boot_ns() */
    __s64 retval;
    __u64 matched_policies;
    __u32 event_id;
    __s32 syscall;
    __u16 cpu;
    __u16 policies_version; /* which policy set matched_policies refers to */
    __u16 argnum;
    __u16 flags;
    /* task context */
    __u64 start_time;       /* thread start, boot ns */
    __u64 leader_start_time; /* thread group leader's start: the process entity */
    __u64 parent_start_time; /* parent process's start: the parent entity */
    __u64 cgroup_id;
    __u32 pid;              /* as seen in the task's pid namespace */
    __u32 tid;
    __u32 ppid;
    __u32 host_pid;
    __u32 host_tid;
    __u32 host_ppid;
    __u32 uid;
    __u32 gid;
    __u32 mnt_ns;
    __u32 pid_ns;
    char comm[TASK_COMM_LEN];
    char uts[UTS_LEN];
};

/* Credentials as Tracee's SlimCred, sent as ARG_BYTES of this layout. */
struct slim_cred {
    __u32 uid, gid, suid, sgid, euid, egid, fsuid, fsgid;
    __u32 user_ns;
    __u32 securebits;
    __u64 cap_inheritable, cap_permitted, cap_effective, cap_bounding, cap_ambient;
};

/* Header flags. */
#define EV_FLAG_ARGS_TRUNCATED 1 /* the args buffer ran out of room */
#define EV_FLAG_SIGNAL 2         /* sent for pytracee's own state (process tree, containers);
                                  * matched_policies may be 0: then no policy selected it */

/* Argument encoding after the header: u8 index, u8 kind, payload. */
enum arg_kind {
    ARG_INT = 0,      /* u64 raw register/value */
    ARG_STR = 1,      /* u16 len, bytes (no NUL) */
    ARG_STR_ARR = 2,  /* u8 count, u8 truncated, count x (u16 len, bytes) */
    ARG_SOCKADDR = 3, /* u16 len, raw struct sockaddr bytes */
    ARG_BYTES = 4,    /* u16 len, raw bytes */
    ARG_INT_PAIR = 5, /* two s32 read from a user pointer (pipe fds) */
    ARG_STR_BLOB = 6, /* u16 len, u8 truncated, NUL-separated strings (argv/env area) */
    ARG_NONE = 255,   /* syscall has no argument at this position */
};

/* How to fetch a syscall's arguments (event_fetch map, by syscall id). */
struct event_fetch {
    __u8 arg_kinds[6];
    __u8 submit_on_enter; /* execve/exit: the image or the task is gone at sys_exit */
    __u8 flags;           /* FETCH_* */
    __u32 derived;        /* the security event built from this syscall at sys_exit, or 0 */
};
#define FETCH_CAPTURE 1   /* a write syscall whose bytes --capture write copies (capture_file_write) */
#define FETCH_AT_EXIT 2   /* the derived event needs nothing from sys_enter (the call's result
                           * and its argument registers, unchanged at sys_exit): it is scoped
                           * and built at sys_exit, with no per-call save */

/* Policy sets are versioned so a reload swaps them atomically: the maps that
 * depend on policies have two slots, the active version picks one
 * (slot = version & 1), and every event carries the version it matched under.
 * events_map: u64 policy bitmap at [slot * MAX_EVENT_ID + event id]. */
#define POLICY_SLOTS 2

/* stats map key = kind * MAX_EVENT_ID + (event_id % MAX_EVENT_ID). */
enum stat_kind {
    STAT_SUBMITTED = 0,
    STAT_LOST_RING_FULL = 1,  /* bpf_ringbuf_output failed: no room */
    STAT_LOST_OTHER = 2,      /* any other submit error */
    STAT_NUM = 3,
};

#endif
