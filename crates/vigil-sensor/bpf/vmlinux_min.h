/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The few kernel types Vigil's eBPF programs touch, written by hand instead of a 3 MB
 * bpftool-generated vmlinux.h.
 *
 * Every struct is marked `preserve_access_index`, so clang emits CO-RE relocations for each
 * field access and the loader (aya) rewrites the offsets against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux). Only the *names* and *types* of the fields listed here matter; their
 * order and the missing fields do not. Checked against Linux 6.18 (6.18.44-fc).
 *
 * Add a field only when a program reads it, and keep the kernel's spelling.
 */
#ifndef VIGIL_VMLINUX_MIN_H
#define VIGIL_VMLINUX_MIN_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef int pid_t;
typedef unsigned int uid_t;
typedef unsigned int gid_t;
typedef _Bool bool;
#define true 1
#define false 0

/* From include/uapi/linux/bpf.h: only the map types Vigil creates. */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

/* include/uapi/linux/bpf.h: flags of bpf_map_update_elem. */
#define BPF_ANY 0

/* include/linux/uidgid_types.h */
typedef struct {
	uid_t val;
} kuid_t;

typedef struct {
	gid_t val;
} kgid_t;

/* include/linux/cred.h */
struct cred {
	kuid_t uid;
	kgid_t gid;
	kuid_t euid;
	kgid_t egid;
} __attribute__((preserve_access_index));

/* include/linux/mm_types.h; the kernel nests these in an anonymous struct, CO-RE finds them. */
struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
} __attribute__((preserve_access_index));

/* include/linux/tty.h */
struct tty_struct {
	char name[64];
} __attribute__((preserve_access_index));

/* include/linux/sched/signal.h: shared by the threads of one process. */
#define SIGNAL_GROUP_EXIT 0x00000004
struct signal_struct {
	int group_exit_code;
	unsigned int flags;
	struct tty_struct *tty;
} __attribute__((preserve_access_index));

/* include/linux/sched.h; loginuid and sessionid exist with CONFIG_AUDIT (on here). */
struct task_struct {
	pid_t pid;
	pid_t tgid;
	int exit_code;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	const struct cred *real_cred;
	struct mm_struct *mm;
	struct signal_struct *signal;
	kuid_t loginuid;
	unsigned int sessionid;
	__u64 start_boottime;
	char comm[16];
} __attribute__((preserve_access_index));

/* include/linux/binfmts.h */
struct linux_binprm {
	const char *filename;
} __attribute__((preserve_access_index));

/* include/linux/ns_common.h, include/net/net_namespace.h: a network namespace's inode. */
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} __attribute__((preserve_access_index)) possible_net_t;

/* include/uapi/linux/in6.h */
struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be16 u6_addr16[8];
		__be32 u6_addr32[4];
	} in6_u;
} __attribute__((preserve_access_index));

/*
 * include/net/sock.h. The kernel nests the address and port pairs in anonymous unions; CO-RE
 * finds the members through them. skc_num is the local port in host order, skc_dport the remote
 * port in network order.
 */
struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	int sk_err;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

/*
 * include/net/inet_sock.h: an inet socket starts with its struct sock. inet_sport (network
 * order) keeps the local port after inet_put_port() zeroes skc_num on the way to TCP_CLOSE.
 */
struct inet_sock {
	__be16 inet_sport;
} __attribute__((preserve_access_index));

/* include/linux/netdevice.h */
struct net_device {
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

/* include/linux/skbuff.h; the header offsets are relative to head. */
struct sk_buff {
	struct net_device *dev;
	unsigned char *head;
	__u16 transport_header;
	__u16 network_header;
} __attribute__((preserve_access_index));

#endif /* VIGIL_VMLINUX_MIN_H */
