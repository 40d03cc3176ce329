/* Kernel-side pathname filters (security_file_open, magic_write,
 * sched_process_exec, and the path prefixes of --capture write): exact values
 * in a hash, `prefix*` in an LPM trie, `*suffix` in an LPM trie of reversed
 * strings. A policy whose filter no path value matches loses its bit before
 * the event is submitted. Each prefix or suffix entry carries the bits of
 * every shorter one it extends (user space computes that), because an LPM
 * lookup returns the longest match only. Paths longer than the key are left
 * to user space, which checks them anyway.
 */
#ifndef PYTRACEE_PATHFILTER_H
#define PYTRACEE_PATHFILTER_H

#define PATH_KEY_LEN 252 /* LPM trie keys carry at most 256 bytes of data */
#define PATH_FILTER_EVENTS 4 /* 0 security_file_open, 1 magic_write, 2 sched_process_exec,
                              * 3 capture_file_write (--capture write=/prefix*) */

struct path_exact_key {
    __u32 slot_event; /* slot * PATH_FILTER_EVENTS + event index */
    char path[PATH_KEY_LEN];
};

struct path_lpm_key {
    __u32 prefixlen; /* bits: 32 for slot_event, then 8 per character */
    __u32 slot_event;
    char path[PATH_KEY_LEN];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct path_exact_key);
    __type(value, __u64);
} path_exact SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 4096);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct path_lpm_key);
    __type(value, __u64);
} path_prefix SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 4096);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct path_lpm_key);
    __type(value, __u64);
} path_suffix SEC(".maps");

/* [slot * PATH_FILTER_EVENTS + event index] -> policies with a kernel pathname filter */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, POLICY_SLOTS * PATH_FILTER_EVENTS);
    __type(key, __u32);
    __type(value, __u64);
} path_filter_cfg SEC(".maps");

/* The key, and the same path reversed for the suffix trie: per CPU, not on the
 * stack (the BPF stack is 512 bytes for a program and the functions it calls). */
struct path_keys {
    struct path_lpm_key fwd;
    struct path_lpm_key rev;
};

PERCPU_SCRATCH(path_key_scratch, struct path_keys, path_keys_buf)

/* Which policies' pathname filters pass for the path at pb->data[start]. */
__noinline __u64 path_filter_pass(__u32 version, __u32 event_idx, int start)
{
    __u32 cfg_key = (version & 1) * PATH_FILTER_EVENTS + (event_idx % PATH_FILTER_EVENTS);
    __u64 *has = bpf_map_lookup_elem(&path_filter_cfg, &cfg_key);
    if (!has || !*has)
        return ~0ULL;
    struct path_buf *pb = path_buf();
    struct path_keys *keys = path_keys_buf();
    if (!pb || !keys || start < 0 || start >= PATH_MAX_LEN)
        return ~0ULL;
    __u32 first = start;
    asm volatile("" : "+r"(first));
    if (pb->data[first & (PATH_MAX_LEN - 1)] != '/')
        return ~0ULL; /* a partial ("...") or pseudo path: user space decides */
    __u32 len = PATH_MAX_LEN - start; /* the path runs from start to its NUL at PATH_MAX_LEN */
    if (len >= PATH_KEY_LEN)
        return ~0ULL; /* too long to decide here */
    struct path_lpm_key *k = &keys->fwd, *r = &keys->rev;
    __builtin_memset(k, 0, sizeof(*k));
    k->slot_event = cfg_key;
    __u32 n = len;
    asm volatile("" : "+r"(n));
    n &= 255; /* bounds the verifier can see; len < PATH_KEY_LEN already */
    if (n >= PATH_KEY_LEN)
        return ~0ULL;
    bpf_probe_read_kernel(k->path, n, &pb->data[start & (PATH_MAX_LEN - 1)]);
    __u64 hits = 0;
    __u64 *v = bpf_map_lookup_elem(&path_exact, &k->slot_event); /* same layout from slot_event on */
    if (v)
        hits |= *v;
    k->prefixlen = 32 + len * 8;
    v = bpf_map_lookup_elem(&path_prefix, k);
    if (v)
        hits |= *v;
    /* reversed, for suffixes */
    __builtin_memset(r, 0, sizeof(*r));
    r->prefixlen = k->prefixlen;
    r->slot_event = cfg_key;
#pragma clang loop unroll(disable)
    for (__u32 i = 0; i < PATH_KEY_LEN; i++) {
        if (i >= len)
            break;
        __u32 j = len - 1 - i;
        if (j >= PATH_KEY_LEN)
            break;
        r->path[i] = k->path[j];
    }
    v = bpf_map_lookup_elem(&path_suffix, r);
    if (v)
        hits |= *v;
    return ~*has | hits;
}

/* put_path for a filtered pathname: policies whose filter rejects it lose their bit. */
static __always_inline __u32 put_path_filtered(struct event_buf *b, __u32 off, __u8 idx,
                                               const struct path *p, __u32 event_idx)
{
    struct path pp = {};
    bpf_core_read(&pp, sizeof(pp), p); /* scalars: global functions take no BTF pointers */
    struct dentry *d = pp.dentry;
    struct vfsmount *m = pp.mnt;
    int start = resolve_path((__u64)d, (__u64)m);
    struct path_buf *pb = path_buf();
    if (start < 0 || !pb)
        return put_str(b, off, idx, NULL, 0);
    b->hdr.matched_policies &= path_filter_pass(b->hdr.policies_version, event_idx, start);
    return put_resolved(b, off, idx, pb, start);
}

#endif

