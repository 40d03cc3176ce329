/* Security events built at sys_exit from what the syscall really used.
 *
 * Tracee takes these from LSM kprobes, which this kernel lacks. Here the
 * saved arguments say which fd or pointer the call used, and the kernel
 * objects behind them (file, socket) are read after the call: the path is
 * the file actually opened, not the string the user passed.
 */
#ifndef PYTRACEE_SECURITY_H
#define PYTRACEE_SECURITY_H

#define NR_WRITE 1
#define NR_PWRITE64 18
#define NR_WRITEV 20
#define NR_PWRITEV 296
#define NR_PWRITEV2 328
#define NR_SENDFILE 40
#define NR_SPLICE 275
#define NR_COPY_FILE_RANGE 326
#define O_APPEND_ 02000
#define NR_OPEN 2
#define NR_CREAT 85
#define NR_DUP 32
#define MAGIC_BYTES 32 /* FILE_MAGIC_HDR_SIZE in Tracee */
#define STATE_NO_EVENT (-1) /* settled at sys_enter: the derived event cannot happen */
#define NR_MMAP 9
#define NR_EXECVEAT_ 322
#define NR_UMOUNT2 166
#define NR_UNLINKAT 263
#define NR_RENAME 82
#define NR_SYMLINK 88
#define NR_LINK 86
#define NR_MKNOD 133
#define PROT_WRITE 0x2
#define PROT_EXEC 0x4
#define VM_PROT_MASK 0x7 /* VM_READ|VM_WRITE|VM_EXEC: the same bits as PROT_* */
/* mem_prot_alert codes (Tracee's) */
#define ALERT_MMAP_W_X 1
#define ALERT_MPROT_X_ADD 2
#define ALERT_MPROT_W_ADD 3
#define ALERT_MPROT_W_REM 4

/* What a credential or namespace change is compared against: the task
 * before the syscall, kept per thread only for the syscalls that need it. */
struct before_state {
    struct slim_cred cred;
    __u32 ns[6]; /* mnt, pid (for children), uts, ipc, net, cgroup */
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u32);
    __type(value, struct before_state);
} before_map SEC(".maps");

/* What sys_exit knows about a call, for the events built from it (its security
 * event, its write capture). Kept per CPU, not on the stack: the BPF stack is
 * 512 bytes for sys_exit and every function it calls together. sys_exit does
 * not nest on a CPU (a tracing program is not re-entered), and nothing else
 * uses it. */
struct exit_call {
    __u64 args[6];
    __u64 matched;
    __s64 ret;
    __s64 state;   /* what the derived event needs from before the call */
    __s64 id;
    __u32 derived;
    __u32 version;
    struct before_state now; /* the builders' own scratch (credentials, namespaces after) */
};

PERCPU_SCRATCH(exit_call_scratch, struct exit_call, exit_call_buf)

static __always_inline void read_cred(struct task_struct *t, struct slim_cred *c)
{
    const struct cred *cr = KPTR(struct task_struct, t)->cred;
    c->uid = cr->uid.val;
    c->gid = cr->gid.val;
    c->suid = cr->suid.val;
    c->sgid = cr->sgid.val;
    c->euid = cr->euid.val;
    c->egid = cr->egid.val;
    c->fsuid = cr->fsuid.val;
    c->fsgid = cr->fsgid.val;
    c->user_ns = cr->user_ns->ns.inum;
    c->securebits = cr->securebits;
    c->cap_inheritable = cr->cap_inheritable.val;
    c->cap_permitted = cr->cap_permitted.val;
    c->cap_effective = cr->cap_effective.val;
    c->cap_bounding = cr->cap_bset.val;
    c->cap_ambient = cr->cap_ambient.val;
}

/* No memcmp in BPF: compare as 64-bit words (sizes are multiples of 8). */
static __always_inline int words_differ(const void *a, const void *b, int words)
{
    const __u64 *x = a, *y = b;
    int differ = 0;
#pragma unroll
    for (int i = 0; i < 10; i++)
        if (i < words && x[i] != y[i])
            differ = 1;
    return differ;
}

static __always_inline void read_ns(struct task_struct *t, __u32 *ns)
{
    struct nsproxy *p = KPTR(struct task_struct, t)->nsproxy;
    ns[0] = p->mnt_ns->ns.inum;
    ns[1] = p->pid_ns_for_children->ns.inum;
    ns[2] = p->uts_ns->ns.inum;
    ns[3] = p->ipc_ns->ns.inum;
    ns[4] = p->net_ns->ns.inum;
    ns[5] = p->cgroup_ns->ns.inum;
}

/* A path argument the way the kernel read it: absolute strings as they are,
 * relative ones joined to the directory the kernel resolved them against
 * (dirfd, or the working directory), so "../x" and a chdir'ed process still
 * give an absolute path. The last component is the process's string: the
 * file itself may be gone (unlink) or not exist yet (mknod). */
#define AT_FDCWD_ -100
static __always_inline __u32 put_at_path(struct event_buf *b, __u32 off, __u8 idx,
                                         struct task_struct *t, __s64 dirfd, const char *user)
{
    char first = 0;
    bpf_probe_read_user(&first, 1, user);
    struct path_buf *pb = path_buf();
    if (first == '/' || !user || !pb)
        return put_str(b, off, idx, user, 1);
    struct dentry *d = NULL;
    struct vfsmount *m = NULL;
    if ((__s32)dirfd == AT_FDCWD_) {
        struct fs_struct *fs = BPF_CORE_READ(t, fs);
        d = BPF_CORE_READ(fs, pwd.dentry);
        m = BPF_CORE_READ(fs, pwd.mnt);
    } else {
        struct file *f = fd_file(t, (__s32)dirfd);
        if (!f)
            return put_str(b, off, idx, user, 1);
        d = BPF_CORE_READ(f, f_path.dentry);
        m = BPF_CORE_READ(f, f_path.mnt);
    }
    int start = resolve_path((__u64)d, (__u64)m);
    if (start < 0)
        return put_str(b, off, idx, user, 1);
    /* The directory ends at PATH_MAX_LEN (its NUL); the name goes after a '/'
     * (or right after the root's own '/'). */
    if (start == PATH_MAX_LEN - 1) {
        bpf_probe_read_user_str(&pb->data[PATH_MAX_LEN], PATH_MAX_LEN - 1, user);
    } else {
        pb->data[PATH_MAX_LEN] = '/';
        bpf_probe_read_user_str(&pb->data[PATH_MAX_LEN + 1], PATH_MAX_LEN - 1, user);
    }
    return put_str(b, off, idx, &pb->data[start & (PATH_MAX_LEN - 1)], 0);
}

struct vma_info {
    __u64 flags;
    struct file *file;
    int found;
};

static long vma_cb(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
    struct vma_info *v = data;
    v->flags = BPF_CORE_READ(vma, vm_flags);
    v->file = BPF_CORE_READ(vma, vm_file);
    v->found = 1;
    return 0;
}

/* The mapping at addr: its protection bits and file, from the VMA. */
static __always_inline struct vma_info find_vma(__u64 addr)
{
    struct vma_info v = {};
    /* bpf_find_vma wants a trusted task pointer: the BTF-typed current task. */
    bpf_find_vma(bpf_get_current_task_btf(), addr, vma_cb, &v, 0);
    return v;
}

/* mem_prot_alert code for a protection change, or 0. Tracee's three conditions are
 * tested in turn and a later match replaces an earlier one, so RW -> RX (made
 * executable and write removed: the JIT and unpacker pattern) is 4, not 2. */
static __always_inline __u32 mprotect_alert(__u32 prev, __u32 prot)
{
    __u32 alert = 0;
    if (!(prev & PROT_EXEC) && (prot & PROT_EXEC))
        alert = ALERT_MPROT_X_ADD; /* made executable */
    if ((prev & PROT_EXEC) && !(prev & PROT_WRITE) && (prot & PROT_WRITE) && (prot & PROT_EXEC))
        alert = ALERT_MPROT_W_ADD; /* executable code made writable */
    if ((prev & PROT_WRITE) && (prot & PROT_EXEC) && !(prot & PROT_WRITE))
        alert = ALERT_MPROT_W_REM; /* written, now executable and locked: code was loaded */
    return alert;
}

/* Whether the call's arguments alone rule its derived event out (most mmap and
 * mprotect calls: nothing is saved for them). */
static __always_inline int derived_args_rule_out(__u32 derived, long id, __u64 prot)
{
    if (derived != EVENT_MEM_PROT_ALERT)
        return 0;
    if (id == NR_MMAP) /* only a W+X mapping can alert */
        return (prot & (PROT_WRITE | PROT_EXEC)) != (PROT_WRITE | PROT_EXEC);
    return !(prot & PROT_EXEC); /* every mprotect alert ends executable */
}

/* The same, as a global function: the verifier checks it once and learns nothing
 * about `id` at the caller, whose later branches on it would otherwise split. */
__noinline int args_rule_out(__u32 derived, __s64 id, __u64 prot)
{
    return derived_args_rule_out(derived, id, prot);
}

/* The file a magic_write's syscall writes to: splice and copy_file_range name
 * theirs third, the others first. */
static __always_inline __s64 magic_write_fd(long id, __u64 *args)
{
    return (id == NR_SPLICE || id == NR_COPY_FILE_RANGE) ? (__s64)args[2] : (__s64)args[0];
}

static __always_inline __s64 derived_enter_state(struct task_struct *t, __u32 derived, long id,
                                                 __u64 *args)
{
    if (derived == EVENT_MEM_PROT_ALERT) {
        if (derived_args_rule_out(derived, id, args[2]))
            return STATE_NO_EVENT;
        if (id == NR_MMAP)
            return 0;
        struct vma_info v = find_vma(args[0]); /* mprotect: protection before */
        return v.found ? (__s64)(v.flags & VM_PROT_MASK) : STATE_NO_EVENT;
    }
    if (derived == EVENT_COMMIT_CREDS || derived == EVENT_SWITCH_TASK_NS) {
        __u32 tid = (__u32)bpf_get_current_pid_tgid();
        struct before_state st = {};
        read_cred(t, &st.cred);
        read_ns(t, st.ns);
        bpf_map_update_elem(&before_map, &tid, &st, BPF_ANY);
        return 0;
    }
    if (derived != EVENT_MAGIC_WRITE)
        return 0;
    /* Only a write at offset 0 of a regular file can be a magic_write: most
     * writes (pipes, sockets, ttys, appends) are settled here, before saving. */
    struct file *f = fd_file(t, magic_write_fd(id, args));
    if (!f || (file_mode(f) & 0170000) != S_IFREG)
        return STATE_NO_EVENT;
    struct file *fk = KPTR(struct file, f);
    if ((fk->f_flags & O_APPEND_) && fk->f_inode->i_size > 0)
        return STATE_NO_EVENT;
    __s64 pos = fk->f_pos;
    if (id == NR_PWRITE64 || id == NR_PWRITEV || (id == NR_PWRITEV2 && (__s64)args[3] != -1))
        pos = (__s64)args[3];                          /* the offset is an argument */
    else if ((id == NR_SPLICE || id == NR_COPY_FILE_RANGE) && args[3])
        bpf_probe_read_user(&pos, sizeof(pos), (void *)args[3]); /* loff_t *off_out */
    return pos == 0 ? 0 : STATE_NO_EVENT;
}

static __always_inline __u32 put_file_identity(struct event_buf *b, __u32 off, __u8 idx,
                                               struct inode *inode)
{
    struct inode *i = KPTR(struct inode, inode);
    off = put_int(b, off, idx, i->i_sb->s_dev);
    return put_int(b, off, idx + 1, i->i_ino);
}

/* Arguments of the derived event; returns 0 when the event does not apply. */
static __always_inline int build_derived(struct event_buf *b, __u32 *offp, struct task_struct *t,
                                         struct exit_call *c)
{
    __u32 derived = c->derived;
    long id = c->id;
    __u64 *args = c->args;
    __s64 ret = c->ret, state = c->state;
    __u32 off = 0;
    if (derived == EVENT_SECURITY_FILE_OPEN) {
        struct file *f = fd_file(t, ret); /* ret < 0: failed, no file: no event */
        if (!f)
            return 0;
        struct file *fk = KPTR(struct file, f);
        struct inode *inode = fk->f_inode;
        off = put_path_filtered(b, off, 0, &f->f_path, 0);           /* pathname */
        if (!b->hdr.matched_policies)
            return 0;
        off = put_int(b, off, 1, fk->f_flags);                       /* flags */
        off = put_file_identity(b, off, 2, inode);                   /* dev, inode */
        off = put_int(b, off, 4, inode_ctime(inode));                /* ctime */
        void *user_path = (void *)(id == NR_OPEN || id == NR_CREAT ? args[0] : args[1]);
        off = put_str(b, off, 5, user_path, 1);                      /* syscall_pathname */
    } else if (derived == EVENT_SECURITY_SOCKET_CREATE) {
        struct socket *sock = file_socket(fd_file(t, ret));
        if (!sock)
            return 0;
        struct sock *sk = BPF_CORE_READ(sock, sk);
        off = put_int(b, off, 0, BPF_CORE_READ(sk, __sk_common.skc_family));
        off = put_int(b, off, 1, BPF_CORE_READ(sock, type));
        off = put_int(b, off, 2, BPF_CORE_READ(sk, sk_protocol));
        off = put_int(b, off, 3, 0);                                 /* kern: from user space */
    } else if (derived == EVENT_SECURITY_SOCKET_CONNECT || derived == EVENT_SECURITY_SOCKET_BIND) {
        struct socket *sock = file_socket(fd_file(t, args[0]));
        if (!sock)
            return 0;
        /* After a successful call the socket holds the address the kernel used;
         * only a failed call leaves the user's buffer (which may have changed). */
        struct sock *sk = BPF_CORE_READ(sock, sk);
        off = put_int(b, off, 0, args[0]);                           /* sockfd */
        if (derived == EVENT_SECURITY_SOCKET_CONNECT) {
            off = put_int(b, off, 1, BPF_CORE_READ(sock, type));     /* type */
            if (ret == 0 || ret == -115)                             /* connected, EINPROGRESS */
                off = put_sock_addr(b, off, 2, sk, 1);               /* remote_addr */
            else
                off = put_sockaddr(b, off, 2, (void *)args[1]);
        } else if (ret == 0) {
            off = put_sock_addr(b, off, 1, sk, 0);                   /* local_addr, as bound */
        } else {
            off = put_sockaddr(b, off, 1, (void *)args[1]);
        }
    } else if (derived == EVENT_SECURITY_SOCKET_LISTEN || derived == EVENT_SECURITY_SOCKET_ACCEPT) {
        struct socket *sock = file_socket(fd_file(t, args[0]));
        if (!sock)
            return 0;
        off = put_int(b, off, 0, args[0]);                           /* sockfd */
        off = put_sock_addr(b, off, 1, BPF_CORE_READ(sock, sk), 0);  /* local_addr */
        if (derived == EVENT_SECURITY_SOCKET_LISTEN)
            off = put_int(b, off, 2, args[1]);                       /* backlog */
    } else if (derived == EVENT_SOCKET_DUP) {
        if (ret < 0)
            return 0;
        struct socket *sock = file_socket(fd_file(t, args[0]));
        if (!sock)
            return 0;
        off = put_int(b, off, 0, args[0]);                           /* oldfd */
        off = put_int(b, off, 1, id == NR_DUP ? ret : (__s64)args[1]); /* newfd */
        off = put_sock_addr(b, off, 2, BPF_CORE_READ(sock, sk), 1);  /* remote_addr */
    } else if (derived == EVENT_MAGIC_WRITE) {
        if (ret <= 0 || state == STATE_NO_EVENT)
            return 0;
        struct file *f = fd_file(t, magic_write_fd(id, args));
        if (!f || (file_mode(f) & 0170000) != S_IFREG)
            return 0;
        off = put_path_filtered(b, off, 0, &f->f_path, 1);           /* pathname */
        if (!b->hdr.matched_policies)
            return 0;
        /* What landed at offset 0: the file's cached first page, after the call
         * (copy_file_range, sendfile and splice have no buffer of the caller's);
         * for the write calls, when that page is not cached (O_DIRECT), the
         * caller's buffer (the first iovec of writev and pwritev). */
        __u32 n = ret < MAGIC_BYTES ? ret : MAGIC_BYTES;
        __u64 cached = cached_addr(f, 0, &n);
        int from_user = !cached;
        const void *buf = cached ? (const void *)cached : (const void *)args[1];
        if (!cached && (id == NR_SENDFILE || id == NR_SPLICE || id == NR_COPY_FILE_RANGE))
            n = 0;                                     /* nothing to read them from */
        else if (!cached && id != NR_WRITE && id != NR_PWRITE64) {
            struct iovec iov = {};
            bpf_probe_read_user(&iov, sizeof(iov), (void *)args[1]);
            buf = iov.iov_base;
            if (iov.iov_len < n)
                n = iov.iov_len;
        }
        off = put_bytes(b, off, 1, ARG_BYTES, buf, n, from_user);    /* bytes */
        off = put_file_identity(b, off, 2, BPF_CORE_READ(f, f_inode)); /* dev, inode */
    } else if (derived == EVENT_MEM_PROT_ALERT) {
        __u32 prot = args[2], alert = 0, prev = 0;
        struct file *f = NULL;
        if (id == NR_MMAP) {
            if (ret < 0 && ret > -4096)
                return 0;
            if ((prot & (PROT_WRITE | PROT_EXEC)) != (PROT_WRITE | PROT_EXEC))
                return 0;
            alert = ALERT_MMAP_W_X;
            f = fd_file(t, (__s32)args[4]);
        } else {
            if (ret != 0 || state == STATE_NO_EVENT)
                return 0;
            prev = state;
            alert = mprotect_alert(prev, prot);
            if (!alert)
                return 0;
            f = find_vma(args[0]).file;
        }
        off = put_int(b, off, 0, alert);                                     /* alert */
        off = put_int(b, off, 1, id == NR_MMAP ? (__u64)ret : args[0]);      /* addr */
        off = put_int(b, off, 2, args[1]);                                   /* len */
        off = put_int(b, off, 3, prot);                                      /* prot */
        off = put_int(b, off, 4, prev);                                      /* prev_prot */
        if (f) {
            struct inode *inode = BPF_CORE_READ(f, f_inode);
            off = put_path(b, off, 5, &f->f_path);                           /* pathname */
            off = put_file_identity(b, off, 6, inode);                       /* dev, inode */
            off = put_int(b, off, 8, inode_ctime(inode));                    /* ctime */
        }
    } else if (derived == EVENT_COMMIT_CREDS || derived == EVENT_SWITCH_TASK_NS) {
        __u32 tid = (__u32)bpf_get_current_pid_tgid();
        struct before_state *before = bpf_map_lookup_elem(&before_map, &tid);
        if (!before)
            return 0;
        struct before_state *now = &c->now;
        int changed = 0;
        if (derived == EVENT_COMMIT_CREDS) {
            read_cred(t, &now->cred);
            changed = words_differ(&now->cred, &before->cred, sizeof(now->cred) / 8);
            if (changed) {
                off = put_bytes(b, off, 0, ARG_BYTES, &before->cred, sizeof(now->cred), 0);
                off = put_bytes(b, off, 1, ARG_BYTES, &now->cred, sizeof(now->cred), 0);
            }
        } else {
            read_ns(t, now->ns);
            changed = words_differ(now->ns, before->ns, sizeof(now->ns) / 8);
            if (changed) {
                off = put_int(b, off, 0, BPF_CORE_READ(t, pid));       /* pid */
                for (int i = 0; i < 6; i++)                            /* new_mnt .. new_cgroup */
                    off = put_int(b, off, i + 1, now->ns[i] != before->ns[i] ? now->ns[i] : 0);
            }
        }
        bpf_map_delete_elem(&before_map, &tid);
        if (!changed)
            return 0;
    } else if (derived == EVENT_SECURITY_INODE_UNLINK) {
        if (ret != 0)
            return 0;
        int at = id == NR_UNLINKAT;
        if (at && (args[2] & 0x200)) /* AT_REMOVEDIR: a directory, not an unlink */
            return 0;
        off = put_at_path(b, off, 0, t, at ? args[0] : AT_FDCWD_, (void *)args[at]); /* pathname */
    } else if (derived == EVENT_SECURITY_INODE_RENAME) {
        if (ret != 0)
            return 0;
        int at = id != NR_RENAME;
        off = put_at_path(b, off, 0, t, at ? args[0] : AT_FDCWD_, (void *)args[at]);     /* old_path */
        off = put_at_path(b, off, 1, t, at ? args[2] : AT_FDCWD_, (void *)args[at ? 3 : 1]); /* new_path */
    } else if (derived == EVENT_SECURITY_INODE_LINK) {
        if (ret != 0)
            return 0;
        int at = id != NR_LINK; /* linkat(olddirfd, oldpath, newdirfd, newpath, flags) */
        off = put_at_path(b, off, 0, t, at ? args[0] : AT_FDCWD_, (void *)args[at]);     /* old_path */
        off = put_at_path(b, off, 1, t, at ? args[2] : AT_FDCWD_, (void *)args[at ? 3 : 1]); /* new_path */
    } else if (derived == EVENT_SECURITY_INODE_SYMLINK) {
        if (ret != 0)
            return 0;
        int at = id != NR_SYMLINK;
        off = put_at_path(b, off, 0, t, at ? args[1] : AT_FDCWD_, (void *)args[at ? 2 : 1]); /* linkpath */
        off = put_str(b, off, 1, (void *)args[0], 1);                   /* target, as stored */
    } else if (derived == EVENT_SECURITY_INODE_MKNOD) {
        if (ret != 0)
            return 0;
        int at = id != NR_MKNOD;
        __u32 mode = args[at + 1];
        __u32 type = mode & 0170000;
        if (type == 0 || type == S_IFREG)
            return 0; /* a regular file: the kernel creates it, no mknod */
        __u32 umask = BPF_CORE_READ(t, fs, umask);
        __u64 udev = args[at + 2]; /* user encoding -> the kernel's dev_t */
        __u32 major = (udev & 0xfff00) >> 8, minor = (udev & 0xff) | ((udev >> 12) & 0xfff00);
        off = put_at_path(b, off, 0, t, at ? args[0] : AT_FDCWD_, (void *)args[at]); /* file_name */
        off = put_int(b, off, 1, type | (mode & 07777 & ~umask));       /* mode */
        off = put_int(b, off, 2, (major << 20) | minor);                /* dev */
    } else if (derived == EVENT_SECURITY_SB_MOUNT) {
        off = put_str(b, off, 0, (void *)args[0], 1);                        /* dev_name */
        off = put_str(b, off, 1, (void *)args[1], 1);                        /* path */
        off = put_str(b, off, 2, (void *)args[2], 1);                        /* type */
        off = put_int(b, off, 3, args[3]);                                   /* flags */
    } else if (derived == EVENT_SECURITY_SB_UMOUNT) {
        off = put_str(b, off, 0, (void *)args[0], 1);                        /* mountpoint */
        off = put_int(b, off, 2, args[1]);                                   /* flags */
    } else if (derived == EVENT_PROCESS_EXECUTE_FAILED) {
        if (ret >= 0)
            return 0; /* it worked: the old image and its memory are gone anyway */
        int at = id == NR_EXECVEAT_;
        off = put_int(b, off, 0, at ? args[0] : (__u64)-100);               /* dirfd */
        off = put_int(b, off, 1, at ? args[4] : 0);                          /* flags */
        off = put_str(b, off, 2, (void *)args[at], 1);                       /* pathname */
        off = put_int(b, off, 11, 0);                                        /* kernel_invoked */
        off = put_str_arr(b, off, 12, (void *)args[at + 1]);                 /* argv */
        off = put_str_arr(b, off, 13, (void *)args[at + 2]);                 /* envp */
    } else {
        return 0;
    }
    *offp = off;
    return 1;
}

#endif
