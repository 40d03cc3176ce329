// SPDX-License-Identifier: GPL-2.0
/* Test program for the libbpf binding and the ring buffer readers.
 *
 * On every getppid() of the process whose tgid is cfg_target_pid, sys_enter
 * sends {seq, tgid} to the ring buffer, seq taken from one global counter so
 * user space can check order and completeness. Per-CPU counters in `hits`:
 *   [0] matched getppid calls     [1] records the ring had no room for
 *   [2] uprobe hits of the target [3] egress packets of cfg_skb_len bytes
 *
 * Built with -DDISCARD_ODD it reserves/commits instead and discards odd seqs.
 * Built with -DRECURSE, every such getppid() also makes on_printk run inside itself
 * once: the kernel skips that nested run and counts it in recursion_misses.
 * Built with -DBROKEN it also has a program the verifier rejects (map value
 * used without a NULL check), to test error reporting and the log handler.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define NR_GETPPID 110 /* x86_64 */

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 cfg_target_pid = 0;
const volatile __u32 cfg_skb_len = 0;

struct record {
    __u64 seq;
    __u32 tgid;
    __u32 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} seq_counter SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

/* Not used by the program: user space exercises hash CRUD on it. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u64);
} scratch SEC(".maps");

static __always_inline void count(__u32 slot)
{
    __u64 *n = bpf_map_lookup_elem(&hits, &slot);
    if (n)
        *n += 1; /* per-CPU slot: no atomics needed */
}

SEC("raw_tracepoint/sys_enter")
int on_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    if ((__u32)(bpf_get_current_pid_tgid() >> 32) != cfg_target_pid)
        return 0;
    if (ctx->args[1] != NR_GETPPID)
        return 0;

    __u32 zero = 0;
    __u64 *seq = bpf_map_lookup_elem(&seq_counter, &zero);
    if (!seq)
        return 0;

    struct record rec = {
        .seq = __sync_fetch_and_add(seq, 1), /* unique across CPUs */
        .tgid = cfg_target_pid,
    };
    count(0);
#ifdef RECURSE
    bpf_printk("getppid"); /* runs on_printk */
#endif
#ifdef DISCARD_ODD
    /* reserve/commit path, discarding odd seqs: readers must skip those */
    struct record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r) {
        count(1);
        return 0;
    }
    *r = rec;
    if (rec.seq & 1)
        bpf_ringbuf_discard(r, 0);
    else
        bpf_ringbuf_submit(r, 0);
#else
    if (bpf_ringbuf_output(&events, &rec, sizeof(rec), 0))
        count(1);
#endif
    return 0;
}

SEC("uprobe")
int on_uprobe(void *ctx)
{
    if ((__u32)(bpf_get_current_pid_tgid() >> 32) == cfg_target_pid)
        count(2);
    return 0;
}

SEC("cgroup_skb/egress")
int on_egress(struct __sk_buff *skb)
{
    if (cfg_skb_len && skb->len == cfg_skb_len)
        count(3);
    return 1; /* always let the packet through */
}

#ifdef RECURSE
/* On bpf_trace_printk's own tracepoint: its printk fires that tracepoint again,
 * while this program is still running on the CPU. */
SEC("raw_tracepoint/bpf_trace_printk")
int on_printk(void *ctx)
{
    if ((__u32)(bpf_get_current_pid_tgid() >> 32) == cfg_target_pid)
        bpf_printk("again");
    return 0;
}
#endif

#ifdef BROKEN
SEC("raw_tracepoint/sys_exit")
int broken_prog(struct bpf_raw_tracepoint_args *ctx)
{
    __u32 key = 1;
    __u64 *v = bpf_map_lookup_elem(&scratch, &key);
    return *v; /* hash lookup without a NULL check: the verifier must refuse this */
}
#endif
