/* Building an event in a per-CPU scratch buffer: header + encoded args.
 *
 * Every write goes at `off & ARGS_MASK`, and each single write is at most
 * MAX_STR_LEN + a few bytes, so the verifier can prove it stays inside
 * args[] (ARGS_MASK + MAX_STR_LEN + 8 < ARGS_SIZE). When off passes
 * ARGS_LIMIT the event is marked truncated and later args are dropped.
 */
#ifndef PYTRACEE_BUFFER_H
#define PYTRACEE_BUFFER_H

#define ARGS_SIZE 16384
#define ARGS_MASK 8191
#define ARGS_LIMIT 8000
#define MAX_STR_LEN 4096
#define MAX_STR_ARR 38 /* Tracee's bound for syscall string arrays */
#define MAX_BLOB 4096  /* argv/env areas read from the mm in one piece */

struct event_buf {
    struct event_header hdr;
    __u8 args[ARGS_SIZE];
};

/* One value of `vtype` per CPU, too large for the 512-byte stack, in map `map`, and
 * `getter()` that returns this CPU's (NULL only if the lookup fails). */
#define PERCPU_SCRATCH(map, vtype, getter)                       \
    struct {                                                     \
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                 \
        __uint(max_entries, 1);                                  \
        __type(key, __u32);                                      \
        __type(value, vtype);                                    \
    } map SEC(".maps");                                          \
    static __always_inline vtype *getter(void)                   \
    {                                                            \
        __u32 zero = 0;                                          \
        return bpf_map_lookup_elem(&map, &zero);                 \
    }

PERCPU_SCRATCH(scratch, struct event_buf, scratch_buf)

/* Index into args[]. The empty asm hides off's known range from clang, which
 * would otherwise drop the mask the verifier needs to see. */
static __always_inline __u32 at(__u32 off)
{
    asm volatile("" : "+r"(off));
    return off & ARGS_MASK;
}

/* Room left for one more argument? Sets the truncated flag when not. */
static __always_inline int has_room(struct event_buf *b, __u32 off)
{
    if (off > ARGS_LIMIT) {
        b->hdr.flags |= EV_FLAG_ARGS_TRUNCATED;
        return 0;
    }
    return 1;
}

static __always_inline __u32 put_int(struct event_buf *b, __u32 off, __u8 idx, __u64 v)
{
    if (!has_room(b, off))
        return off;
    b->args[at(off)] = idx;
    b->args[at(off + 1)] = ARG_INT;
    __builtin_memcpy(&b->args[at(off + 2)], &v, sizeof(v));
    b->hdr.argnum++;
    return off + 10;
}

static __always_inline void put_u16(struct event_buf *b, __u32 off, __u16 v)
{
    b->args[at(off)] = v & 0xff;
    b->args[at(off + 1)] = v >> 8;
}

/* A string from user or kernel memory: u8 idx, u8 kind, u16 len, bytes. */
static __always_inline __u32 put_str(struct event_buf *b, __u32 off, __u8 idx, const void *src,
                                     int user)
{
    if (!has_room(b, off))
        return off;
    long n = 0;
    if (src) {
        if (user)
            n = bpf_probe_read_user_str(&b->args[at(off + 4)], MAX_STR_LEN, src);
        else
            n = bpf_probe_read_kernel_str(&b->args[at(off + 4)], MAX_STR_LEN, src);
    }
    if (n < 1)
        n = 1; /* unreadable or NULL: an empty string */
    n -= 1;    /* drop the NUL */
    b->args[at(off)] = idx;
    b->args[at(off + 1)] = ARG_STR;
    put_u16(b, off + 2, n);
    b->hdr.argnum++;
    return off + 4 + n;
}

/* Raw bytes from user (user=1) or kernel memory, at most MAX_STR_LEN. */
static __always_inline __u32 put_bytes(struct event_buf *b, __u32 off, __u8 idx, __u8 kind,
                                       const void *src, __u32 len, int user)
{
    if (!has_room(b, off))
        return off;
    if (len > MAX_STR_LEN)
        len = MAX_STR_LEN;
    asm volatile("" : "+r"(len));
    len &= ARGS_MASK; /* a bound the verifier sees: at(off) + ARGS_MASK < ARGS_SIZE */
    long err;
    if (user)
        err = bpf_probe_read_user(&b->args[at(off + 4)], len, src);
    else
        err = bpf_probe_read_kernel(&b->args[at(off + 4)], len, src);
    if (err)
        len = 0;
    b->args[at(off)] = idx;
    b->args[at(off + 1)] = kind;
    put_u16(b, off + 2, len);
    b->hdr.argnum++;
    return off + 4 + len;
}

/* A NULL-terminated array of user string pointers (argv, envp). The walk
 * runs in bpf_loop so the verifier checks its body once, not per element. */
struct str_arr_walk {
    struct event_buf *b;
    const char *const *arr;
    __u32 off;
    __u8 count;
    __u8 ended;
};

static long str_arr_step(__u64 i, void *data)
{
    struct str_arr_walk *w = data;
    const char *s = NULL;
    if (bpf_probe_read_user(&s, sizeof(s), &w->arr[i & 63]) || !s) {
        w->ended = 1;
        return 1;
    }
    if (i >= MAX_STR_ARR)
        return 1; /* one past the bound: only looked for the terminating NULL */
    __u32 off = w->off;
    if (off > ARGS_LIMIT)
        return 1;
    struct event_buf *b = w->b;
    long n = bpf_probe_read_user_str(&b->args[at(off + 2)], MAX_STR_LEN, s);
    if (n < 1)
        n = 1;
    n -= 1;
    put_u16(b, off, n);
    w->off = off + 2 + n;
    w->count++;
    return 0;
}

static __always_inline __u32 put_str_arr(struct event_buf *b, __u32 off, __u8 idx,
                                         const char *const *arr)
{
    if (!has_room(b, off))
        return off;
    struct str_arr_walk w = {.b = b, .arr = arr, .off = off + 4};
    if (arr)
        bpf_loop(MAX_STR_ARR + 1, str_arr_step, &w, 0);
    else
        w.ended = 1;
    __u8 truncated = !w.ended;
    if (truncated)
        b->hdr.flags |= EV_FLAG_ARGS_TRUNCATED;
    b->args[at(off)] = idx;
    b->args[at(off + 1)] = ARG_STR_ARR;
    b->args[at(off + 2)] = w.count;
    b->args[at(off + 3)] = truncated;
    b->hdr.argnum++;
    return w.off;
}

/* A user sockaddr, sized by its family. */
static __always_inline __u32 put_sockaddr(struct event_buf *b, __u32 off, __u8 idx,
                                          const void *addr)
{
    __u16 family = 0;
    __u32 len = 0;
    if (addr && !bpf_probe_read_user(&family, sizeof(family), addr)) {
        if (family == 2)       /* AF_INET */
            len = 16;
        else if (family == 10) /* AF_INET6 */
            len = 28;
        else if (family == 1)  /* AF_UNIX */
            len = 110;
        else
            len = 2;
    }
    return put_bytes(b, off, idx, ARG_SOCKADDR, addr, len, 1);
}

/* Emit the built event. Counts what was sent and what was lost, by event. */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, STAT_NUM * MAX_EVENT_ID);
    __type(key, __u32);
    __type(value, __u64);
} stats SEC(".maps");

static __always_inline void count_stat(__u32 kind, __u32 event_id)
{
    __u32 key = kind * MAX_EVENT_ID + (event_id % MAX_EVENT_ID);
    __u64 *v = bpf_map_lookup_elem(&stats, &key);
    if (v)
        *v += 1;
}

static __always_inline void submit(struct event_buf *b, __u32 off)
{
    __u32 size = sizeof(struct event_header) + (off & (ARGS_SIZE - 1));
    if (size > sizeof(struct event_buf))
        size = sizeof(struct event_buf);
    long err = bpf_ringbuf_output(&events, b, size, 0);
    if (!err)
        count_stat(STAT_SUBMITTED, b->hdr.event_id);
    else if (err == -11 || err == -28) /* EAGAIN, ENOSPC: no room */
        count_stat(STAT_LOST_RING_FULL, b->hdr.event_id);
    else
        count_stat(STAT_LOST_OTHER, b->hdr.event_id);
}

#endif
