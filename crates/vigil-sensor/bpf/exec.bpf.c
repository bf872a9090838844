// SPDX-License-Identifier: GPL-2.0-only
/*
 * Process execution capture.
 *
 * Hook: tp_btf/sched_process_exec, i.e. the BTF-typed raw tracepoint
 *   TRACE_EVENT(sched_process_exec, TP_PROTO(struct task_struct *p, pid_t old_pid,
 *                                            struct linux_binprm *bprm))
 * fired from exec_binprm() after the new image is loaded, so `current` already runs in the new
 * mm (its argv is at mm->arg_start..arg_end) with the new comm and credentials.
 * Checked against Linux 6.18 (6.18.44-fc). tp_btf needs no tracefs, unlike classic tracepoint programs.
 *
 * One fixed-size struct vigil_exec_record (exec.h) per exec goes into EXEC_EVENTS; when the
 * ring buffer is full the record is lost and EXEC_DROPS[0] is incremented so user space can
 * report it.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "exec.h"

/* 4 MiB: about 940 records of ~4.4 KiB, enough for exec bursts while user space catches up. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} EXEC_EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} EXEC_DROPS SEC(".maps");

static __always_inline void count_drop(void)
{
	__u32 slot = VIGIL_EXEC_DROPS_SLOT;
	__u64 *drops = bpf_map_lookup_elem(&EXEC_DROPS, &slot);

	if (drops)
		__sync_fetch_and_add(drops, 1);
}

static __always_inline void read_args(struct vigil_exec_record *e, struct task_struct *p)
{
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	unsigned long start, end, size;
	long err;

	if (!mm)
		return;
	start = BPF_CORE_READ(mm, arg_start);
	end = BPF_CORE_READ(mm, arg_end);
	if (end <= start)
		return;
	size = end - start;
	e->args_size = size > 0xffffffffUL ? 0xffffffffU : (__u32)size;

	/* Two branches with verifier-provable constant bounds: a full buffer, or a masked length. */
	if (size >= VIGIL_ARGS_LEN) {
		err = bpf_probe_read_user(e->args, VIGIL_ARGS_LEN, (const void *)start);
		e->args_len = VIGIL_ARGS_LEN;
		if (size > VIGIL_ARGS_LEN)
			e->flags |= VIGIL_EXEC_ARGS_TRUNCATED;
	} else {
		__u32 len = size & (VIGIL_ARGS_LEN - 1);

		err = bpf_probe_read_user(e->args, len, (const void *)start);
		e->args_len = len;
	}
	if (err) {
		e->args_len = 0;
		e->flags |= VIGIL_EXEC_ARGS_READ_FAILED;
	}
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct vigil_exec_record *e;
	const struct cred *cred;
	struct task_struct *parent;
	const char *filename;
	long n;

	e = bpf_ringbuf_reserve(&EXEC_EVENTS, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}

	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->start_boottime_ns = BPF_CORE_READ(p, start_boottime);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = BPF_CORE_READ(p, tgid);
	e->tid = BPF_CORE_READ(p, pid);

	/*
	 * real_parent is the thread that forked us; the parent *process* is its group leader, and
	 * only the leader's start time matches /proc/<ppid>/stat.
	 */
	parent = BPF_CORE_READ(p, real_parent);
	e->ppid = BPF_CORE_READ(parent, tgid);
	e->parent_start_boottime_ns = BPF_CORE_READ(parent, group_leader, start_boottime);

	/* The objective credentials, the ones /proc/<pid>/status shows. */
	cred = BPF_CORE_READ(p, real_cred);
	e->uid = BPF_CORE_READ(cred, uid.val);
	e->gid = BPF_CORE_READ(cred, gid.val);
	e->euid = BPF_CORE_READ(cred, euid.val);
	e->egid = BPF_CORE_READ(cred, egid.val);

	e->flags = 0;
	e->args_size = 0;
	e->args_len = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	filename = BPF_CORE_READ(bprm, filename);
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename);
	if (n < 0) {
		e->filename[0] = '\0';
		e->filename_len = 0;
		e->flags |= VIGIL_EXEC_FILENAME_FAILED;
	} else {
		e->filename_len = (__u16)n;
	}

	read_args(e, p);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* GPL-compatible: bpf_probe_read_{kernel,user}{,_str} are GPL-only helpers. */
char LICENSE[] SEC("license") = "GPL";
