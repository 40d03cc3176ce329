/* From a file descriptor of the current task to the kernel objects behind it. */
#ifndef PYTRACEE_FD_H
#define PYTRACEE_FD_H

#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10

static __always_inline struct file *fd_file(struct task_struct *t, __s64 fd)
{
    if (fd < 0)
        return NULL;
    struct fdtable *fdt = KPTR(struct task_struct, t)->files->fdt;
    if ((__u64)fd >= fdt->max_fds)
        return NULL;
    struct file **fds = fdt->fd;
    struct file *f = NULL;
    bpf_core_read(&f, sizeof(f), &fds[fd]);
    return f;
}

static __always_inline __u16 file_mode(struct file *f)
{
    return KPTR(struct file, f)->f_inode->i_mode;
}

static __always_inline struct socket *file_socket(struct file *f)
{
    if (!f || (file_mode(f) & 0170000) != S_IFSOCK)
        return NULL;
    return BPF_CORE_READ(f, private_data);
}

/* ctime of an inode in ns; the top bits of i_ctime_nsec are flags (multigrain). */
static __always_inline __u64 inode_ctime(struct inode *inode)
{
    struct inode *i = KPTR(struct inode, inode);
    return i->i_ctime_sec * 1000000000ULL + (i->i_ctime_nsec & 0x3fffffff);
}

/* A socket's own (peer=0) or remote (peer=1) address, as a struct sockaddr,
 * built in place in the event (a copy on the stack would cost 136 of the 512
 * bytes sys_exit and its callees share). */
static __always_inline __u32 put_sock_addr(struct event_buf *b, __u32 off, __u8 idx,
                                           struct sock *sk, int peer)
{
    if (!has_room(b, off))
        return off;
    __u8 *sa = &b->args[at(off + 4)]; /* at most 110 bytes: inside args[] (buffer.h) */
    __u32 len = 2;
    __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
    __builtin_memset(sa, 0, 28); /* sin_zero; sin6_flowinfo, sin6_scope_id */
    __builtin_memcpy(sa, &family, 2);
    if (family == AF_INET) {
        __be16 port = peer ? BPF_CORE_READ(sk, __sk_common.skc_dport)
                           : bpf_htons(BPF_CORE_READ(sk, __sk_common.skc_num));
        __be32 addr = peer ? BPF_CORE_READ(sk, __sk_common.skc_daddr)
                           : BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
        __builtin_memcpy(&sa[2], &port, 2);
        __builtin_memcpy(&sa[4], &addr, 4);
        len = 16;
    } else if (family == AF_INET6) {
        __be16 port = peer ? BPF_CORE_READ(sk, __sk_common.skc_dport)
                           : bpf_htons(BPF_CORE_READ(sk, __sk_common.skc_num));
        __builtin_memcpy(&sa[2], &port, 2);
        if (peer)
            bpf_core_read(&sa[8], 16, &sk->__sk_common.skc_v6_daddr);
        else
            bpf_core_read(&sa[8], 16, &sk->__sk_common.skc_v6_rcv_saddr);
        len = 28;
    } else if (family == AF_UNIX) {
        struct unix_sock *u = (struct unix_sock *)sk;
        if (peer)
            u = (struct unix_sock *)BPF_CORE_READ(u, peer);
        struct unix_address *ua = u ? BPF_CORE_READ(u, addr) : NULL;
        if (ua) {
            __u32 n = BPF_CORE_READ(ua, len);
            if (n > 2) {
                __u32 path_len = n - 2;
                if (path_len > 108)
                    path_len = 108;
                asm volatile("" : "+r"(path_len));
                path_len &= 127; /* a bound the verifier sees (clang folds the one above) */
                if (bpf_probe_read_kernel(&sa[2], path_len, (void *)ua->name + 2) == 0)
                    len = path_len + 2;
            }
        }
    }
    b->args[at(off)] = idx;
    b->args[at(off + 1)] = ARG_SOCKADDR;
    put_u16(b, off + 2, len);
    b->hdr.argnum++;
    return off + 4 + len;
}

#endif
