// SPDX-License-Identifier: GPL-2.0-only
/*
 * TCP connection capture.
 *
 * Hooks (BTF-typed raw tracepoints; tp_btf needs no tracefs), checked against Linux 6.18
 * (6.18.44-fc):
 *   tp_btf/inet_sock_set_state: TP_PROTO(const struct sock *sk, const int oldstate,
 *                                         const int newstate)
 *     fired by inet_sk_set_state() and inet_sk_state_store() for every state change of every
 *     inet socket in every network namespace. Recorded: LISTEN, SYN_SENT, SYN_RECV, ESTABLISHED
 *     out of SYN_SENT or SYN_RECV, and CLOSE. Quirks of 6.18 that shape this file:
 *       - SYN_SENT is set in tcp_v4_connect() *before* inet_hash_connect() picks the source
 *         port, so an unbound socket's SYN_SENT record has lport 0 (later records have it);
 *       - on the way to CLOSE, inet_put_port() zeroes skc_num first: see local_port();
 *       - SYN_RECV fires when the handshake's final ACK creates the child socket, in softirq
 *         context; on loopback that softirq runs in the *sender's* task (shared/KERNEL.md), so
 *         `current` is not the owner. The child's addresses and ports are already those of the
 *         connection (tests/tcp_capture.rs checks the client's port). A half-open SYN scan
 *         never gets there (its request sockets stay TCP_NEW_SYN_RECV): see tcp_send_reset.
 *   tp_btf/tcp_send_reset: TP_PROTO(const struct sock *sk, const struct sk_buff *skb,
 *                                    const enum sk_rst_reason reason)
 *     fired by tcp_v{4,6}_send_reset() before answering a segment with RST. Only sk == NULL is
 *     recorded: a segment that matched no socket, e.g. a SYN to a closed port
 *     (reason SK_RST_REASON_NO_SOCKET). Then skb is the *incoming* segment, not the RST we
 *     send (the tracepoint itself reverses its 4-tuple to print the RST's direction): verified
 *     by tests/tcp_capture.rs, where the copied TCP header has only SYN set and its source port
 *     is the connecting socket's. So its source is the remote peer, its destination us.
 *
 * Attribution: the process is known where the kernel runs in its context (connect() for
 * SYN_SENT, listen() for LISTEN) and remembered per socket in SOCKETS, so later transitions of
 * the same socket, which mostly run in softirq context, carry it too. Inbound connections take
 * the owner of the listener on their (netns, port) from LISTENERS, which user space also seeds
 * with the listeners that predate the sensor. `current` is never used for inbound transitions.
 *
 * Records (records.h, struct vigil_tcp_record) go into TCP_EVENTS; when it is full the record is
 * lost and TCP_DROPS[0] is incremented.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "records.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* include/net/tcp_states.h */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10

/* 1 MiB: about 5,700 records of 184 bytes (with the ring buffer's header). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} TCP_EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} TCP_DROPS SEC(".maps");

/* What is known of a socket between its transitions. Keyed by the socket's address. */
struct vigil_sock_info {
	struct vigil_owner owner;
	__u8 has_owner;
	__u8 direction; /* VIGIL_DIR_* */
	__u8 _pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct vigil_sock_info);
} SOCKETS SEC(".maps");

/* Listening sockets by (network namespace, port); mirrored in src/source/ebpf/record.rs. */
struct vigil_listener_key {
	__u32 netns;
	__u16 port;
	__u16 _pad;
};

struct vigil_listener {
	struct vigil_owner owner;
	__u64 sk; /* the listening socket, 0 when seeded from /proc by user space */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct vigil_listener_key);
	__type(value, struct vigil_listener);
} LISTENERS SEC(".maps");

static __always_inline void count_drop(void)
{
	__u32 slot = VIGIL_DROPS_SLOT;
	__u64 *drops = bpf_map_lookup_elem(&TCP_DROPS, &slot);

	if (drops)
		__sync_fetch_and_add(drops, 1);
}

static __always_inline bool interesting(int oldstate, int newstate)
{
	switch (newstate) {
	case TCP_LISTEN:
	case TCP_SYN_SENT:
	case TCP_SYN_RECV:
		return true;
	case TCP_ESTABLISHED:
		return oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV;
	case TCP_CLOSE:
		return oldstate != TCP_CLOSE;
	default:
		return false;
	}
}

/* The calling task as a socket's owner: only valid in the owner's own syscall. */
static __always_inline void current_owner(struct vigil_owner *o)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();

	o->start_boottime_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	o->pid = id >> 32;
	o->tid = (__u32)id;
	o->uid = (__u32)bpf_get_current_uid_gid();
	o->_pad = 0;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline struct vigil_tcp_record *reserve(__u32 kind)
{
	struct vigil_tcp_record *e = bpf_ringbuf_reserve(&TCP_EVENTS, sizeof(*e), 0);

	if (!e) {
		count_drop();
		return 0;
	}
	/* The ring buffer hands out uninitialised memory; every byte goes to user space. */
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.kind = kind;
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	return e;
}

/*
 * The local port. skc_num is zeroed by inet_put_port() before the CLOSE transition of a socket
 * that did not bind explicitly, so inet_sport (what the kernel's own tracepoint prints) comes
 * first; both are 0 at SYN_SENT before inet_hash_connect() picks the port.
 */
static __always_inline __u16 local_port(const struct sock *sk)
{
	__u16 sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));

	return sport ? sport : BPF_CORE_READ(sk, __sk_common.skc_num);
}

static __always_inline void read_endpoints(struct vigil_tcp_record *e, const struct sock *sk)
{
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->lport = local_port(sk);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (e->family == AF_INET) {
		BPF_CORE_READ_INTO((__be32 *)e->laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__be32 *)e->raddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)e->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)e->raddr, sk, __sk_common.skc_v6_daddr);
	}
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct vigil_sock_info info = {};
	struct vigil_listener_key lkey = {};
	struct vigil_tcp_record *e;
	__u64 key = (__u64)sk;
	__u16 family;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (!interesting(oldstate, newstate))
		return 0;

	lkey.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	lkey.port = local_port(sk);

	if (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN) {
		/* connect() and listen() run in the owner's syscall. */
		current_owner(&info.owner);
		info.has_owner = 1;
		info.direction = newstate == TCP_SYN_SENT ? VIGIL_DIR_OUTBOUND : VIGIL_DIR_INBOUND;
		bpf_map_update_elem(&SOCKETS, &key, &info, BPF_ANY);
		if (newstate == TCP_LISTEN && lkey.port != 0) {
			struct vigil_listener listener = { .owner = info.owner, .sk = key };

			bpf_map_update_elem(&LISTENERS, &lkey, &listener, BPF_ANY);
		}
	} else if (newstate == TCP_SYN_RECV) {
		/* Softirq: the owner is whoever listens on this port, not `current`. */
		struct vigil_listener *listener = bpf_map_lookup_elem(&LISTENERS, &lkey);

		if (listener) {
			info.owner = listener->owner;
			info.has_owner = 1;
		}
		info.direction = VIGIL_DIR_INBOUND;
		bpf_map_update_elem(&SOCKETS, &key, &info, BPF_ANY);
	} else {
		struct vigil_sock_info *known = bpf_map_lookup_elem(&SOCKETS, &key);

		if (known)
			info = *known;
		if (oldstate == TCP_SYN_SENT)
			info.direction = VIGIL_DIR_OUTBOUND;
		else if (oldstate == TCP_SYN_RECV || oldstate == TCP_LISTEN)
			info.direction = VIGIL_DIR_INBOUND;
		if (newstate == TCP_CLOSE) {
			bpf_map_delete_elem(&SOCKETS, &key);
			if (oldstate == TCP_LISTEN) {
				struct vigil_listener *listener = bpf_map_lookup_elem(&LISTENERS, &lkey);

				if (listener && listener->sk == key)
					bpf_map_delete_elem(&LISTENERS, &lkey);
			}
		}
	}

	e = reserve(VIGIL_KIND_TCP_STATE);
	if (!e)
		return 0;
	if (info.has_owner) {
		e->owner = info.owner;
		e->hdr.flags |= VIGIL_TCP_OWNER;
	}
	e->direction = info.direction;
	e->netns = lkey.netns;
	e->sk_err = BPF_CORE_READ(sk, sk_err);
	e->old_state = oldstate;
	e->new_state = newstate;
	read_endpoints(e, sk);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(handle_send_reset, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	struct vigil_tcp_record *e;
	unsigned char *head;
	__u16 network_header, transport_header;

	/* With a socket the reset belongs to a connection whose transitions are recorded above. */
	if (sk || !skb)
		return 0;

	e = reserve(VIGIL_KIND_TCP_RESET);
	if (!e)
		return 0;
	e->direction = VIGIL_DIR_INBOUND;
	e->reset_reason = reason;
	e->netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);

	head = BPF_CORE_READ(skb, head);
	network_header = BPF_CORE_READ(skb, network_header);
	transport_header = BPF_CORE_READ(skb, transport_header);
	/* 0xffff: the offset was never set. */
	if (network_header == 0xffff || transport_header == 0xffff) {
		e->hdr.flags |= VIGIL_TCP_HDR_FAILED;
		bpf_ringbuf_submit(e, 0);
		return 0;
	}
	/* A whole IPv6 header, or an IPv4 one; fall back to 20 bytes near the end of a page. */
	if (!bpf_probe_read_kernel(e->net_hdr, VIGIL_NET_HDR_LEN, head + network_header))
		e->net_hdr_len = VIGIL_NET_HDR_LEN;
	else if (!bpf_probe_read_kernel(e->net_hdr, 20, head + network_header))
		e->net_hdr_len = 20;
	if (!bpf_probe_read_kernel(e->tcp_hdr, VIGIL_TCP_HDR_LEN, head + transport_header))
		e->tcp_hdr_len = VIGIL_TCP_HDR_LEN;
	if (!e->net_hdr_len || !e->tcp_hdr_len)
		e->hdr.flags |= VIGIL_TCP_HDR_FAILED;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* GPL-compatible: bpf_probe_read_kernel and the ring buffer helpers are GPL-only. */
char LICENSE[] SEC("license") = "GPL";
