/* Empty syscall hooks for bench/mixed_workload.py: the floor any syscall tracer pays.
 *
 * Two raw tracepoint programs, on sys_enter and sys_exit, that do nothing. With both
 * attached, every syscall of every process pays the raw_tracepoint dispatch and one
 * BPF program run on entry and on exit, and nothing else.
 *
 *   clang -O2 -g -target bpf -I/work/main/bpf -c empty_hooks.bpf.c -o empty_hooks.bpf.o */
#include "vmlinux.h"

#define SEC(name) __attribute__((section(name), used))

SEC("raw_tracepoint/sys_enter")
int empty_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    return 0;
}

SEC("raw_tracepoint/sys_exit")
int empty_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
