/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The record exec.bpf.c writes into the EXEC_EVENTS ring buffer, one per successful execve.
 *
 * This layout is shared with user space: src/source/ebpf_exec/record.rs mirrors it as one
 * #[repr(C)] struct with size and offset asserts. Change both together, and only append or
 * resize fields at the end of the fixed part so the asserts catch every mismatch.
 */
#ifndef VIGIL_EXEC_H
#define VIGIL_EXEC_H

#define VIGIL_COMM_LEN 16
#define VIGIL_FILENAME_LEN 256
/* Power of two: the program masks lengths with (VIGIL_ARGS_LEN - 1) to bound reads. */
#define VIGIL_ARGS_LEN 4096

/* flags */
#define VIGIL_EXEC_ARGS_TRUNCATED 0x1     /* argv was longer than VIGIL_ARGS_LEN */
#define VIGIL_EXEC_ARGS_READ_FAILED 0x2   /* bpf_probe_read_user of argv failed */
#define VIGIL_EXEC_FILENAME_FAILED 0x4    /* reading bprm->filename failed */

struct vigil_exec_record {
	__u64 ktime_ns;            /* bpf_ktime_get_boot_ns() at the exec (CLOCK_BOOTTIME) */
	__u64 start_boottime_ns;   /* task->start_boottime: process start, CLOCK_BOOTTIME ns */
	__u64 parent_start_boottime_ns; /* real_parent->group_leader->start_boottime */
	__u64 cgroup_id;           /* bpf_get_current_cgroup_id() (cgroup v2) */
	__u32 pid;                 /* task->tgid: the process id user space sees */
	__u32 tid;                 /* task->pid: the thread (equals pid after de_thread) */
	__u32 ppid;                /* task->real_parent->tgid */
	__u32 uid;                 /* real_cred->uid */
	__u32 gid;                 /* real_cred->gid */
	__u32 euid;                /* real_cred->euid */
	__u32 egid;                /* real_cred->egid */
	__u32 args_size;           /* mm->arg_end - mm->arg_start: the real argv size in bytes */
	__u32 args_len;            /* bytes of argv copied into args[] */
	__u16 filename_len;        /* bytes in filename[] including the NUL, 0 if unread */
	__u16 flags;               /* VIGIL_EXEC_* */
	char comm[VIGIL_COMM_LEN];
	char filename[VIGIL_FILENAME_LEN];
	char args[VIGIL_ARGS_LEN]; /* argv strings, NUL-separated, as in /proc/<pid>/cmdline */
};

_Static_assert(sizeof(struct vigil_exec_record) == 4440, "update record.rs with exec.h");

/* Index of the single slot in EXEC_DROPS: ring buffer reservations that failed. */
#define VIGIL_EXEC_DROPS_SLOT 0

#endif /* VIGIL_EXEC_H */
