/* struct path -> absolute path string, walking dentries and mounts.
 *
 * No bpf_d_path on raw tracepoints, so walk d_parent up to the mount root,
 * then hop to the parent mount, until the root of the task's mount
 * namespace. Names are copied backwards into a per-CPU buffer.
 */
#ifndef PYTRACEE_PATH_H
#define PYTRACEE_PATH_H

#include "kread.h"

#define PATH_BUF_SIZE 8192
#define PATH_MAX_LEN 4096
#define NAME_MASK 255
#define MAX_PATH_COMPONENTS 128

struct path_buf {
    char data[PATH_BUF_SIZE];
};

PERCPU_SCRATCH(path_scratch, struct path_buf, path_buf)

struct path_walk {
    struct path_buf *pb;
    struct dentry *dentry;
    struct vfsmount *vfsmnt;
    struct mount *mnt;
    struct mount *mnt_parent;
    struct dentry *mnt_root; /* of vfsmnt: read once per mount, not per name */
    __u32 off;
    __u8 written;
    __u8 complete; /* reached the root (or a pseudo file's own name) */
};

/* One step up the tree: a name, or a hop from a mount root to its mountpoint. */
static long path_step(__u64 i, void *data)
{
    struct path_walk *w = data;
    struct dentry *dentry = w->dentry;
    struct mount *mnt = w->mnt;
    struct dentry *mnt_root = w->mnt_root;
    struct dentry *dk = KPTR(struct dentry, dentry);
    struct dentry *parent = dk->d_parent;
    if (dentry == mnt_root || dentry == parent) {
        if (dentry != mnt_root) {
            w->complete = 1;
            return 1; /* not mounted anywhere: pipe:, socket:, memfd: */
        }
        struct mount *up = w->mnt_parent;
        if (mnt == up) {
            w->complete = 1;
            return 1; /* the namespace root */
        }
        struct mount *uk = KPTR(struct mount, up);
        w->dentry = KPTR(struct mount, mnt)->mnt_mountpoint;
        w->mnt = up;
        w->mnt_parent = uk->mnt_parent;
        w->vfsmnt = &up->mnt;
        w->mnt_root = uk->mnt.mnt_root;
        return 0;
    }
    const unsigned char *nm = dk->d_name.name;
    __u32 len = dk->d_name.len & NAME_MASK;
    __u32 off = w->off;
    if (off <= len + 1)
        return 1;
    off -= len;
    bpf_probe_read_kernel(&w->pb->data[off & (PATH_MAX_LEN - 1)], len, nm);
    off -= 1;
    w->pb->data[off & (PATH_MAX_LEN - 1)] = '/';
    w->off = off;
    w->written = 1;
    w->dentry = parent;
    return 0;
}

/* Resolve (dentry, vfsmount) into this CPU's path buffer; returns the start
 * offset of the NUL-terminated path, or -1. A global function so the verifier
 * checks the walk once, not at every place a path is resolved. Pointers come
 * in as integers: global functions cannot take kernel pointers. */
__noinline int resolve_path(__u64 dentry_addr, __u64 vfsmnt_addr)
{
    struct path_buf *pb = path_buf();
    struct dentry *dentry = (struct dentry *)dentry_addr;
    struct vfsmount *vfsmnt = (struct vfsmount *)vfsmnt_addr;
    if (!pb || !dentry || !vfsmnt)
        return -1;
    struct mount *mnt = container_of(vfsmnt, struct mount, mnt);
    struct path_walk w = {
        .pb = pb,
        .dentry = dentry,
        .vfsmnt = vfsmnt,
        .mnt = mnt,
        .mnt_parent = KPTR(struct mount, mnt)->mnt_parent,
        .mnt_root = KPTR(struct vfsmount, vfsmnt)->mnt_root,
        .off = PATH_MAX_LEN,
    };
    pb->data[PATH_MAX_LEN & (PATH_BUF_SIZE - 1)] = 0;
    bpf_loop(MAX_PATH_COMPONENTS, path_step, &w, 0);
    if (w.written && !w.complete && w.off >= 3) {
        /* Too deep or too long: say the start is missing, so a partial path
         * is never taken for an absolute one. */
        w.off -= 3;
        pb->data[w.off & (PATH_MAX_LEN - 1)] = '.';
        pb->data[(w.off + 1) & (PATH_MAX_LEN - 1)] = '.';
        pb->data[(w.off + 2) & (PATH_MAX_LEN - 1)] = '.';
    }
    if (w.written)
        return w.off & (PATH_MAX_LEN - 1);
    /* Nothing above the dentry: the root itself ("/"), or a dentry that
     * lives nowhere in the tree and is known by its name ("memfd:x"). */
    struct dentry *last = w.dentry;
    struct vfsmount *last_mnt = w.vfsmnt;
    struct qstr name = BPF_CORE_READ(last, d_name);
    __u32 len = name.len & NAME_MASK;
    if (last == BPF_CORE_READ(last_mnt, mnt_root) || len == 0) {
        pb->data[(PATH_MAX_LEN - 1) & (PATH_BUF_SIZE - 1)] = '/';
        return PATH_MAX_LEN - 1;
    }
    __u32 off = PATH_MAX_LEN - len;
    bpf_probe_read_kernel(&pb->data[off & (PATH_MAX_LEN - 1)], len, name.name);
    return off & (PATH_MAX_LEN - 1);
}

/* The path resolve_path left at `start` as a string argument: its length is known
 * (it ends at PATH_MAX_LEN), so it is copied whole, not byte by byte up to the NUL. */
static __always_inline __u32 put_resolved(struct event_buf *b, __u32 off, __u8 idx,
                                          struct path_buf *pb, int start)
{
    __u32 from = start & (PATH_MAX_LEN - 1);
    return put_bytes(b, off, idx, ARG_STR, &pb->data[from], PATH_MAX_LEN - from, 0);
}

/* Append the resolved path of `p` as a string argument. */
static __always_inline __u32 put_path(struct event_buf *b, __u32 off, __u8 idx, const struct path *p)
{
    struct dentry *d = NULL;
    struct vfsmount *m = NULL;
    if (p) {
        struct path pp = {};
        bpf_core_read(&pp, sizeof(pp), p); /* scalars: global functions take no BTF pointers */
        d = pp.dentry;
        m = pp.mnt;
    }
    int start = resolve_path((__u64)d, (__u64)m);
    struct path_buf *pb = path_buf();
    if (start < 0 || !pb)
        return put_str(b, off, idx, NULL, 0);
    return put_resolved(b, off, idx, pb, start);
}

#endif
