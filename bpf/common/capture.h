/* --capture write: the bytes a traced process wrote to a regular file.
 *
 * At sys_exit of write, pwrite64, writev, pwritev and pwritev2 (ret > 0), the
 * written bytes are read back from the caller's buffers and sent as
 * capture_file_write events of at most CAPTURE_CHUNK bytes each, with the
 * file offset they were written at. One write sends at most
 * CAPTURE_MAX_CHUNKS events (and reads at most CAPTURE_MAX_IOV iovecs); what
 * is left is announced by one more event without bytes, flagged truncated,
 * whose `truncated` argument says how many bytes were not sent.
 *
 * Nothing here runs unless user space set cfg_capture_write before load: the
 * verifier drops the calls as dead code otherwise.
 */
#ifndef PYTRACEE_CAPTURE_H
#define PYTRACEE_CAPTURE_H

#define NR_PWRITEV 296
#define NR_PWRITEV2 328
#define O_APPEND_ 02000
#define CAPTURE_CHUNK MAX_STR_LEN /* bytes per event (put_bytes' bound) */
#define CAPTURE_MAX_CHUNKS 32     /* per write: 128 KiB */
#define CAPTURE_MAX_IOV 16        /* iovecs read per writev (a power of two) */
#define CAPTURE_PATH_IDX 3        /* pathfilter.h: the --capture write=/prefix* table */

const volatile __u32 cfg_capture_write = 0;

struct capture_walk {
    struct event_buf *b;
    struct path_buf *pb;
    const struct iovec *iov; /* user pointer; NULL for write/pwrite64 */
    __u64 base;              /* user address of the next byte to send */
    __u64 seg_left;          /* bytes left in the current buffer (iovec) */
    __u64 left;              /* bytes the call wrote and we did not send yet */
    __u64 pos;               /* file offset of the next byte */
    __u64 dev;
    __u64 ino;
    __u32 path_start;
    __u32 iov_idx;
    __u32 iov_cnt;
    __u32 chunks;
};

/* Arguments every capture_file_write event carries: dev, inode, pathname, offset. */
static __always_inline __u32 put_capture_head(struct capture_walk *w)
{
    struct event_buf *b = w->b;
    b->hdr.argnum = 0;
    b->hdr.flags = 0;
    __u32 off = put_int(b, 0, 0, w->dev);                                          /* dev */
    off = put_int(b, off, 1, w->ino);                                              /* inode */
    off = put_str(b, off, 2, &w->pb->data[w->path_start & (PATH_MAX_LEN - 1)], 0); /* pathname */
    return put_int(b, off, 3, w->pos);                                             /* offset */
}

/* One step: start the next iovec, or send the next chunk of the current one. */
static long capture_step(__u64 i, void *data)
{
    struct capture_walk *w = data;
    if (!w->left)
        return 1;
    if (!w->seg_left) {
        if (!w->iov || w->iov_idx >= w->iov_cnt || w->iov_idx >= CAPTURE_MAX_IOV)
            return 1;
        struct iovec v = {};
        if (bpf_probe_read_user(&v, sizeof(v), &w->iov[w->iov_idx & (CAPTURE_MAX_IOV - 1)]))
            return 1;
        w->iov_idx++;
        w->base = (__u64)v.iov_base;
        w->seg_left = v.iov_len;
        return 0;
    }
    if (w->chunks >= CAPTURE_MAX_CHUNKS)
        return 1;
    __u64 n = w->seg_left < w->left ? w->seg_left : w->left;
    if (n > CAPTURE_CHUNK)
        n = CAPTURE_CHUNK;
    struct event_buf *b = w->b;
    __u32 off = put_capture_head(w);
    off = put_bytes(b, off, 4, ARG_BYTES, (const void *)w->base, n, 1);        /* bytes */
    submit(b, off);
    w->chunks++;
    w->base += n;
    w->seg_left -= n;
    w->left -= n;
    w->pos += n;
    return 0;
}

/* Send what a successful write put into a regular file. A global function: the
 * verifier checks it once, apart from the sys_exit program. */
__noinline int emit_capture_write(struct exit_call *cc)
{
    if (!cc || cc->ret <= 0)
        return 0;
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    struct file *f = fd_file(t, cc->args[0]);
    if (!f || (file_mode(f) & 0170000) != S_IFREG)
        return 0;
    struct event_buf *b = scratch_buf();
    if (!b)
        return 0;
    struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
    struct vfsmount *m = BPF_CORE_READ(f, f_path.mnt);
    int start = resolve_path((__u64)d, (__u64)m);
    struct path_buf *pb = path_buf();
    if (start < 0 || !pb)
        return 0;
    __u64 matched = cc->matched & path_filter_pass(cc->version, CAPTURE_PATH_IDX, start);
    if (!matched)
        return 0; /* outside every --capture write=/prefix* */
    fill_header(&b->hdr, t, EVENT_CAPTURE_FILE_WRITE, cc->id, cc->version);
    b->hdr.matched_policies = matched;
    b->hdr.retval = cc->ret;

    /* Where the bytes went: the call's offset argument, or the file position
     * (advanced by the write already), or the end for O_APPEND. */
    __u64 ret = cc->ret;
    __s64 id = cc->id;
    struct inode *inode = BPF_CORE_READ(f, f_inode);
    __s64 pos;
    if (BPF_CORE_READ(f, f_flags) & O_APPEND_)
        pos = BPF_CORE_READ(inode, i_size) - ret;
    else if (id == NR_WRITE || id == NR_WRITEV || (id == NR_PWRITEV2 && (__s64)cc->args[3] == -1))
        pos = BPF_CORE_READ(f, f_pos) - ret;
    else
        pos = cc->args[3];
    int vec = id == NR_WRITEV || id == NR_PWRITEV || id == NR_PWRITEV2;
    struct capture_walk w = {
        .b = b,
        .pb = pb,
        .iov = vec ? (const struct iovec *)cc->args[1] : NULL,
        .base = vec ? 0 : cc->args[1],
        .seg_left = vec ? 0 : ret,
        .left = ret,
        .pos = pos,
        .dev = BPF_CORE_READ(inode, i_sb, s_dev),
        .ino = BPF_CORE_READ(inode, i_ino),
        .path_start = start,
        .iov_cnt = vec ? cc->args[2] : 0,
    };
    bpf_loop(CAPTURE_MAX_CHUNKS + CAPTURE_MAX_IOV, capture_step, &w, 0);
    if (w.left) {
        /* The rest was not sent: say how much, at the offset where it starts. */
        __u32 off = put_capture_head(&w);
        off = put_int(b, off, 5, w.left);                                         /* truncated */
        b->hdr.flags |= EV_FLAG_ARGS_TRUNCATED;
        submit(b, off);
    }
    return 0;
}

#endif
