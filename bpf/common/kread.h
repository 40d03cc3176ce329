/* Direct loads from kernel memory.
 *
 * BPF_CORE_READ costs a bpf_probe_read_kernel helper call per field. A pointer
 * cast with bpf_rdonly_cast is an (untrusted) BTF pointer instead: its fields
 * are read with plain loads that the kernel guards against faults, several
 * times cheaper on the per-event paths. Field offsets stay CO-RE relocated
 * (vmlinux.h types carry preserve_access_index).
 */
#ifndef PYTRACEE_KREAD_H
#define PYTRACEE_KREAD_H

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

#define KPTR(type, p) ((type *)bpf_rdonly_cast((const void *)(p), bpf_core_type_id_kernel(type)))

#endif
