/* The first bytes of a file, read from its page cache.
 *
 * Data that reaches a file through copy_file_range, sendfile or splice never
 * passes through the caller's memory, so magic_write reads what landed at
 * offset 0 of the destination from the page holding it. A struct page pointer
 * becomes a kernel address through the direct map, whose base (and that of
 * the struct page array) the kernel randomises at boot and this kernel does
 * not export: the calibration program below finds both once at start, from a
 * page user space filled with a random marker and whose frame number it read
 * from /proc/self/pagemap. Until it has run, nothing is read.
 */
#ifndef PYTRACEE_PAGECACHE_H
#define PYTRACEE_PAGECACHE_H

#define OVERLAYFS_MAGIC 0x794c7630
#define XA_CHUNK_LEVELS 8 /* 64 slots a level: more than any file offset 0 needs */
#define DIRECT_MAP_ALIGN (1ULL << 30) /* the kernel randomises its regions in 1 GiB steps */
#define CALIBRATE_TRIES 4096          /* 4 TiB of physical address space */

/* Found by pytracee_calibrate; 0 until then. */
__u64 pc_direct_map = 0;
__u64 pc_page_array = 0;

/* The inode that holds the data: an overlayfs file's upper inode. */
static __always_inline struct inode *data_inode(struct inode *inode)
{
    if (BPF_CORE_READ(inode, i_sb, s_magic) != OVERLAYFS_MAGIC)
        return inode;
    struct ovl_inode *oi = container_of(inode, struct ovl_inode, vfs_inode);
    struct dentry *upper = BPF_CORE_READ(oi, __upperdentry);
    return upper ? BPF_CORE_READ(upper, d_inode) : NULL;
}

/* The folio at index `index` of the inode's page cache (an xarray), or NULL. */
static __always_inline void *cached_folio(struct inode *inode, __u64 index)
{
    struct address_space *m = BPF_CORE_READ(inode, i_mapping);
    __u64 entry = (__u64)BPF_CORE_READ(m, i_pages.xa_head);
    for (int i = 0; i < XA_CHUNK_LEVELS; i++) {
        if ((entry & 3) != 2 || entry <= 4096)
            break; /* not an internal node: a folio, a value or nothing */
        struct xa_node *node = (struct xa_node *)(entry - 2);
        __u8 shift = BPF_CORE_READ(node, shift);
        __u64 slot = (index >> (shift & 63)) & 63;
        entry = (__u64)BPF_CORE_READ(node, slots[slot]);
    }
    if (!entry || (entry & 3)) /* empty, a shadow/swap value, or still internal */
        return NULL;
    return (void *)entry;
}

/* The kernel address of offset `pos` of the file's cached data, and in *n how
 * many of the bytes asked for lie in that page; 0 when the page is not cached
 * (or before calibration). */
static __always_inline __u64 cached_addr(struct file *f, __u64 pos, __u32 *n)
{
    __u64 direct = pc_direct_map, pages = pc_page_array;
    if (!direct || !f)
        return 0;
    struct inode *inode = data_inode(BPF_CORE_READ(f, f_inode));
    if (!inode)
        return 0;
    __u64 index = pos >> 12;
    void *folio = cached_folio(inode, index);
    if (!folio)
        return 0;
    /* A large folio spans several indexes, from folio->index on. */
    __u64 first = BPF_CORE_READ((struct folio *)folio, index);
    if (index < first)
        return 0;
    __u64 pfn = ((__u64)folio - pages) / bpf_core_type_size(struct page) + (index - first);
    __u32 in_page = 4096 - (pos & 4095);
    if (*n > in_page)
        *n = in_page;
    return direct + (pfn << 12) + (pos & 4095);
}

struct calibrate_walk {
    __u64 task;
    __u64 pfn;
    __u64 marker[2];
    __u64 found;
};

static long calibrate_step(__u64 i, struct calibrate_walk *w)
{
    /* Slab objects (our task_struct) live in the direct map, at base + their
     * physical address: the base is at or below them, 1 GiB aligned. */
    __u64 base = (w->task & ~(DIRECT_MAP_ALIGN - 1)) - i * DIRECT_MAP_ALIGN;
    __u64 got[2] = {};
    if (bpf_probe_read_kernel(got, sizeof(got), (void *)(base + (w->pfn << 12))))
        return 0;
    if (got[0] == w->marker[0] && got[1] == w->marker[1]) {
        w->found = base;
        return 1;
    }
    return 0;
}

/* Run once by user space (BPF_PROG_TEST_RUN, in its own task). Its arguments:
 * a file whose page 0 starts with a 16-byte marker, mapped and touched; that
 * page's frame number (from /proc/self/pagemap); the marker. Returns 1 when
 * both bases were found. */
SEC("raw_tp")
int pytracee_calibrate(struct bpf_raw_tracepoint_args *ctx)
{
    __u64 fd = ctx->args[0], pfn = ctx->args[1];
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    struct file *f = fd_file(t, fd);
    if (!f)
        return 0;
    void *folio = cached_folio(data_inode(BPF_CORE_READ(f, f_inode)), 0);
    if (!folio)
        return 0;
    struct calibrate_walk w = {.task = (__u64)t, .pfn = pfn,
                               .marker = {ctx->args[2], ctx->args[3]}};
    bpf_loop(CALIBRATE_TRIES, calibrate_step, &w, 0);
    if (!w.found)
        return 0;
    pc_page_array = (__u64)folio - pfn * bpf_core_type_size(struct page);
    pc_direct_map = w.found;
    return 1;
}

#endif
