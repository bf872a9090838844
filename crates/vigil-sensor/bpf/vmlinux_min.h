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
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_RINGBUF = 27,
};

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

/* include/linux/sched.h */
struct task_struct {
	pid_t pid;
	pid_t tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	const struct cred *real_cred;
	struct mm_struct *mm;
	__u64 start_boottime;
	char comm[16];
} __attribute__((preserve_access_index));

/* include/linux/binfmts.h */
struct linux_binprm {
	const char *filename;
} __attribute__((preserve_access_index));

#endif /* VIGIL_VMLINUX_MIN_H */
