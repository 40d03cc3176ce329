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
#define NR_OPEN 2
#define NR_CREAT 85
#define NR_DUP 32
#define MAGIC_BYTES 32 /* FILE_MAGIC_HDR_SIZE in Tracee */

/* At sys_enter: what sys_exit cannot know any more. For writes, the file
 * offset before the call (magic_write fires for writes at offset 0). */
static __always_inline __s64 derived_enter_state(struct task_struct *t, __u32 derived, long id,
                                                 __u64 *args)
{
    if (derived != EVENT_MAGIC_WRITE)
        return 0;
    if (id == NR_WRITE || id == NR_WRITEV) {
        struct file *f = fd_file(t, args[0]);
        return f ? BPF_CORE_READ(f, f_pos) : -1;
    }
    return args[3]; /* pwrite64 / pwritev: the offset is an argument */
}

static __always_inline __u32 put_file_identity(struct event_buf *b, __u32 off, __u8 idx,
                                               struct inode *inode)
{
    off = put_int(b, off, idx, BPF_CORE_READ(inode, i_sb, s_dev));
    return put_int(b, off, idx + 1, BPF_CORE_READ(inode, i_ino));
}

/* Arguments of the derived event; returns 0 when the event does not apply. */
static __always_inline int build_derived(struct event_buf *b, __u32 *offp, struct task_struct *t,
                                         __u32 derived, long id, __u64 *args, __s64 ret,
                                         __s64 state)
{
    __u32 off = 0;
    if (derived == EVENT_SECURITY_FILE_OPEN) {
        struct file *f = fd_file(t, ret); /* ret < 0: failed, no file: no event */
        if (!f)
            return 0;
        struct inode *inode = BPF_CORE_READ(f, f_inode);
        off = put_path(b, off, 0, &f->f_path);                       /* pathname */
        off = put_int(b, off, 1, BPF_CORE_READ(f, f_flags));         /* flags */
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
        off = put_int(b, off, 0, args[0]);                           /* sockfd */
        if (derived == EVENT_SECURITY_SOCKET_CONNECT) {
            off = put_int(b, off, 1, BPF_CORE_READ(sock, type));     /* type */
            off = put_sockaddr(b, off, 2, (void *)args[1]);          /* remote_addr */
        } else {
            off = put_sockaddr(b, off, 1, (void *)args[1]);          /* local_addr */
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
        if (ret <= 0 || state != 0)
            return 0;
        struct file *f = fd_file(t, args[0]);
        if (!f || (file_mode(f) & 0170000) != S_IFREG)
            return 0;
        const void *buf = (const void *)args[1];
        __u64 n = ret < MAGIC_BYTES ? ret : MAGIC_BYTES;
        if (id != NR_WRITE && id != NR_PWRITE64) { /* writev, pwritev: the first iovec */
            struct iovec iov = {};
            bpf_probe_read_user(&iov, sizeof(iov), (void *)args[1]);
            buf = iov.iov_base;
            if (iov.iov_len < n)
                n = iov.iov_len;
        }
        off = put_path(b, off, 0, &f->f_path);                       /* pathname */
        off = put_bytes(b, off, 1, ARG_BYTES, buf, n, 1);            /* bytes */
        off = put_file_identity(b, off, 2, BPF_CORE_READ(f, f_inode)); /* dev, inode */
    } else {
        return 0;
    }
    *offp = off;
    return 1;
}

#endif
