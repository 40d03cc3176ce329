/* Network packets from cgroup_skb ingress/egress, attributed to the task that owns
 * the socket.
 *
 * cgroup_skb runs in softirq for most ingress (and for some egress: ACKs,
 * retransmits), so the current task says nothing about who owns a packet. Tasks
 * are recorded per socket instead, when they create or use one (sys_exit of
 * socket, accept, accept4, connect, bind, listen: track_socket), keyed by the
 * socket's inode number; the skb program finds the socket's inode through
 * skb->sk and sends the packet with the recorded task context. Packets of
 * sockets nobody recorded (created before pytracee started and not used by one
 * of those calls since, or made through io_uring) are not sent: there is no task
 * to attribute them to. Entries are not removed at close (the LRU ages them out):
 * a socket inode number reused after a wrap of get_next_ino() could meet a stale
 * entry if its new socket was never recorded.
 *
 * The record: the owner's header (event NET_PACKET_BASE, or the base of the
 * packet's class when its policies want classes only; the policies that want
 * this packet, scoped again under the active policy set when a reload came
 * since the owner was recorded) + args 0 direction
 * (1 = ingress), 1 the packet's length, 2 the packet from its L3 header, at most
 * cfg_net_snaplen bytes.
 */
#ifndef PYTRACEE_NET_H
#define PYTRACEE_NET_H

/* Which packets of a tracked socket are sent, by what the policies select: every
 * packet, or only those of a class (the events of a class need no other packets). */
#define EVENT_NET_PACKET_BASE 700      /* every packet */
#define EVENT_NET_PACKET_DNS_BASE 701  /* TCP/UDP from or to port 53: DNS events, DNS cache */
#define EVENT_NET_PACKET_HTTP_BASE 702 /* TCP whose payload starts a request or response */
#define EVENT_NET_PACKET_FLOW_BASE 703 /* TCP with SYN, FIN or RST: flow begin and end */
#define EVENT_NET_PACKET_ICMP_BASE 704 /* ICMP and ICMPv6 */
#define CLASS_DNS 1
#define CLASS_HTTP 2
#define CLASS_FLOW 4
#define CLASS_ICMP 8
#define NET_SNAP_MAX 4096 /* MAX_STR_LEN: one bytes argument */

/* Set before load by user space: bytes of each packet sent (headers + payload). */
const volatile __u32 cfg_net_snaplen = 1024;

/* socket inode number -> the header of the task that owns it. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, __u64);
    __type(value, struct event_header);
} sock_owners SEC(".maps");

/* A connection a listener took in has no socket (and so no inode) until accept()
 * returns, and its first packets often come before that: they go to the owner
 * of the listener on that port, in that network namespace. */
struct listener_key {
    __u32 netns;
    __u16 port;
    __u16 family;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, struct listener_key);
    __type(value, struct event_header);
} listen_owners SEC(".maps");

#define TCP_LISTEN 10

static __always_inline struct listener_key listener_of(struct sock *sk)
{
    struct listener_key k = {
        .netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum),
        .port = BPF_CORE_READ(sk, __sk_common.skc_num),
        .family = BPF_CORE_READ(sk, __sk_common.skc_family),
    };
    return k;
}

/* The skb programs' own scratch space. Egress runs in process context and can be
 * interrupted by a softirq that runs ingress (or egress) on the same CPU, so there
 * are two slots per CPU, picked by how deep the current nesting is (net_nest).
 * The tracing programs' `scratch` is never touched here for the same reason.
 * (Slots are released in the order taken; a kernel that preempts BPF programs in
 * process context, PREEMPT_RT, would need a per-slot busy flag instead.) */
#define NET_NEST_MAX 2
struct net_slot {
    struct event_buf b;
    __u64 sk_addr; /* see skb_sock_inode */
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, NET_NEST_MAX);
    __type(key, __u32);
    __type(value, struct net_slot);
} net_scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} net_nest SEC(".maps");

/* Record the current task as the owner of socket `fd` for the policies (of
 * `version`) that select network events and whose scope it is in. */
static __always_inline void track_socket(struct task_struct *t, __s64 fd, __u32 version,
                                         __u64 matched)
{
    struct file *f = fd_file(t, fd);
    struct socket *sock = file_socket(f);
    if (!sock)
        return;
    struct sock *sk = BPF_CORE_READ(sock, sk);
    __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
    if (family != AF_INET && family != AF_INET6)
        return;
    __u64 ino = BPF_CORE_READ(f, f_inode, i_ino);
    int listening = BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_LISTEN &&
                    BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP;
    struct listener_key lk = {};
    if (listening)
        lk = listener_of(sk);
    /* Out of scope: recorded all the same (no policy bits), so that its packets are
     * known to be unwanted rather than taken for a listener's (sock_owner). */
    struct event_buf *b = scratch_buf();
    if (!b)
        return;
    fill_header(&b->hdr, t, EVENT_NET_PACKET_BASE, -1, version);
    b->hdr.matched_policies = matched;
    bpf_map_update_elem(&sock_owners, &ino, &b->hdr, BPF_ANY);
    if (listening)
        bpf_map_update_elem(&listen_owners, &lk, &b->hdr, BPF_ANY);
}

/* The socket behind skb->sk as a kernel pointer, or NULL. The verifier forbids
 * arithmetic on socket pointers, and CO-RE reads are arithmetic; storing the
 * pointer in a map value and loading it back yields a plain number that
 * bpf_probe_read_kernel accepts (pointer stores are allowed with CAP_PERFMON). */
static __always_inline struct sock *skb_sock(struct __sk_buff *skb, struct net_slot *slot)
{
    struct bpf_sock *bsk = skb->sk;
    if (!bsk)
        return 0;
    struct bpf_sock *full = bpf_sk_fullsock(bsk);
    if (!full) /* a SYN-ACK leaves from a request socket: its listener owns it */
        full = bpf_get_listener_sock(bsk);
    if (!full)
        return NULL; /* time-wait: the owner has closed the socket */
    *(volatile __u64 *)&slot->sk_addr = (__u64)full;
    return (struct sock *)*(volatile __u64 *)&slot->sk_addr;
}

static __always_inline struct event_header *sock_owner(struct sock *sk)
{
    struct socket *sock = BPF_CORE_READ(sk, sk_socket);
    if (sock) {
        __u64 ino = BPF_CORE_READ(sock, file, f_inode, i_ino);
        struct event_header *owner = bpf_map_lookup_elem(&sock_owners, &ino);
        if (owner)
            return owner;
    }
    /* Not accepted yet, or accept() has not returned (no owner recorded yet). */
    if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
        return NULL;
    struct listener_key lk = listener_of(sk);
    return bpf_map_lookup_elem(&listen_owners, &lk);
}

/* Policies of `version` that want packets of any kind. */
static __always_inline __u64 net_policies(__u32 version)
{
    return event_policies(version, EVENT_NET_PACKET_BASE) |
           event_policies(version, EVENT_NET_PACKET_DNS_BASE) |
           event_policies(version, EVENT_NET_PACKET_HTTP_BASE) |
           event_policies(version, EVENT_NET_PACKET_FLOW_BASE) |
           event_policies(version, EVENT_NET_PACKET_ICMP_BASE);
}

/* A payload's first 4 bytes that start an HTTP request or response. */
static __always_inline int http_start(__u32 w)
{
#define W(a, b, c, d) ((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)
    return w == W('G', 'E', 'T', ' ') || w == W('P', 'O', 'S', 'T') || w == W('P', 'U', 'T', ' ') ||
           w == W('H', 'E', 'A', 'D') || w == W('D', 'E', 'L', 'E') || w == W('O', 'P', 'T', 'I') ||
           w == W('P', 'A', 'T', 'C') || w == W('C', 'O', 'N', 'N') || w == W('T', 'R', 'A', 'C') ||
           w == W('H', 'T', 'T', 'P');
#undef W
}

/* CLASS_* bits of a packet (IPv6: no extension headers before TCP/UDP). */
static __always_inline __u32 classify(struct __sk_buff *skb)
{
    __u8 ip[10];
    if (bpf_skb_load_bytes(skb, 0, ip, sizeof(ip)))
        return 0;
    __u32 l4;
    __u8 proto;
    if (ip[0] >> 4 == 4) {
        l4 = (ip[0] & 15) * 4;
        proto = ip[9];
    } else if (ip[0] >> 4 == 6) {
        l4 = 40;
        proto = ip[6];
    } else {
        return 0;
    }
    if (proto == IPPROTO_ICMP || proto == 58 /* IPPROTO_ICMPV6 */)
        return CLASS_ICMP;
    if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
        return 0;
    __u8 th[14]; /* ports, and for TCP up to the data offset and the flags */
    __u32 thlen = proto == IPPROTO_TCP ? sizeof(th) : 4;
    if (bpf_skb_load_bytes(skb, l4 & 63, th, thlen & 15))
        return 0;
    __u32 c = 0;
    if ((th[0] == 0 && th[1] == 53) || (th[2] == 0 && th[3] == 53))
        c |= CLASS_DNS;
    if (proto != IPPROTO_TCP)
        return c;
    if (th[13] & 0x07) /* FIN, SYN, RST */
        c |= CLASS_FLOW;
    __u32 payload = (l4 & 63) + ((th[12] >> 4) * 4);
    __u32 start = 0;
    if (skb->len >= payload + 4 && !bpf_skb_load_bytes(skb, payload & 127, &start, 4) &&
        http_start(start))
        c |= CLASS_HTTP;
    return c;
}

static __always_inline void net_send(struct __sk_buff *skb, struct net_slot *slot, int ingress)
{
    struct sock *sk = skb_sock(skb, slot);
    if (!sk)
        return;
    struct event_header *owner = sock_owner(sk);
    if (!owner)
        return;
    /* The owner's policies. Recorded under an older policy set (a reload since):
     * scope the owner again under the active one, once, for every later packet. */
    __u32 ver = active_version();
    if (owner->policies_version != ver) {
        owner->matched_policies = scope_match_task(ver, net_policies(ver), owner);
        owner->policies_version = ver;
    }
    __u64 mine = owner->matched_policies;
    __u64 matched = mine & event_policies(ver, EVENT_NET_PACKET_BASE);
    __u64 dns = mine & event_policies(ver, EVENT_NET_PACKET_DNS_BASE);
    __u64 http = mine & event_policies(ver, EVENT_NET_PACKET_HTTP_BASE);
    __u64 flow = mine & event_policies(ver, EVENT_NET_PACKET_FLOW_BASE);
    __u64 icmp = mine & event_policies(ver, EVENT_NET_PACKET_ICMP_BASE);
    __u32 event_id = EVENT_NET_PACKET_BASE;
    if (dns | http | flow | icmp) {
        __u32 c = classify(skb);
        matched |= (c & CLASS_DNS ? dns : 0) | (c & CLASS_HTTP ? http : 0) |
                   (c & CLASS_FLOW ? flow : 0) | (c & CLASS_ICMP ? icmp : 0);
        if (!(mine & event_policies(ver, EVENT_NET_PACKET_BASE)))
            event_id = c & CLASS_DNS ? EVENT_NET_PACKET_DNS_BASE
                     : c & CLASS_HTTP ? EVENT_NET_PACKET_HTTP_BASE
                     : c & CLASS_FLOW ? EVENT_NET_PACKET_FLOW_BASE : EVENT_NET_PACKET_ICMP_BASE;
    }
    if (!matched)
        return;
    struct event_buf *b = &slot->b;
    __builtin_memcpy(&b->hdr, owner, sizeof(b->hdr));
    b->hdr.event_id = event_id;
    b->hdr.matched_policies = matched;
    /* DNS messages are sent whole (up to NET_SNAP_MAX): a cut one cannot be read. */
    __u32 snap = cfg_net_snaplen;
    if (skb->len > snap && (classify(skb) & CLASS_DNS))
        snap = NET_SNAP_MAX;
    b->hdr.ts = bpf_ktime_get_boot_ns();
    b->hdr.cpu = bpf_get_smp_processor_id();
    b->hdr.argnum = 0;
    b->hdr.flags = 0;
    __u32 off = put_int(b, 0, 0, ingress);
    off = put_int(b, off, 1, skb->len);
    __u32 len = skb->len;
    if (len > snap)
        len = snap;
    if (len > NET_SNAP_MAX)
        len = NET_SNAP_MAX;
    asm volatile("" : "+r"(len));
    len &= ARGS_MASK; /* bounds the verifier sees (see put_bytes) */
    if (len == 0 || len > NET_SNAP_MAX || bpf_skb_load_bytes(skb, 0, &b->args[at(off + 4)], len))
        len = 0;
    b->args[at(off)] = 2;
    b->args[at(off + 1)] = ARG_BYTES;
    put_u16(b, off + 2, len);
    b->hdr.argnum++;
    submit(b, off + 4 + len);
}

static __always_inline int net_packet(struct __sk_buff *skb, int ingress)
{
    if (!net_policies(active_version()))
        return 1;
    __u32 zero = 0;
    __u32 *nest = bpf_map_lookup_elem(&net_nest, &zero);
    if (!nest)
        return 1;
    __u32 level = *nest;
    if (level >= NET_NEST_MAX) { /* cannot happen without preemption of softirqs: count it */
        count_stat(STAT_LOST_OTHER, EVENT_NET_PACKET_BASE);
        return 1;
    }
    *nest = level + 1;
    struct net_slot *slot = bpf_map_lookup_elem(&net_scratch, &level);
    if (slot)
        net_send(skb, slot, ingress);
    *nest = level;
    return 1; /* observe only: every packet passes */
}

SEC("cgroup_skb/ingress")
int net_ingress(struct __sk_buff *skb)
{
    return net_packet(skb, 1);
}

SEC("cgroup_skb/egress")
int net_egress(struct __sk_buff *skb)
{
    return net_packet(skb, 0);
}

#endif
