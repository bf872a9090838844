// SPDX-License-Identifier: GPL-2.0-only
/*
 * Process lifecycle capture: exec, fork and exit, in one ring buffer so user space sees them in
 * the order they happened (a fork before the child's exec before its exit), which keeps its
 * pid -> process cache coherent.
 *
 * Hooks (BTF-typed raw tracepoints; tp_btf needs no tracefs), checked against Linux 6.18
 * (6.18.44-fc):
 *   tp_btf/sched_process_exec: TP_PROTO(struct task_struct *p, pid_t old_pid,
 *                                        struct linux_binprm *bprm)
 *     fired from exec_binprm() after the new image is loaded: `current` already runs in the new
 *     mm (argv at mm->arg_start..arg_end) with the new comm and credentials.
 *   tp_btf/sched_process_fork: TP_PROTO(struct task_struct *parent, struct task_struct *child)
 *     fired from kernel_clone() before the child first runs, for threads too; only children
 *     that lead a new thread group (child->pid == child->tgid) are recorded.
 *   tp_btf/sched_process_exit: TP_PROTO(struct task_struct *p, bool group_dead)
 *     fired from do_exit() after tsk->exit_code is set; group_dead (added in 6.16) is true for
 *     exactly one thread per process, the last one to exit, so only that one is recorded.
 *
 * One record (records.h) per event goes into PROCESS_EVENTS; when the ring buffer is full the
 * record is lost and PROCESS_DROPS[0] is incremented so user space can report it.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "records.h"

/* 4 MiB: about 930 exec records of ~4.4 KiB, or 30,000 fork/exit records, for bursts. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} PROCESS_EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} PROCESS_DROPS SEC(".maps");

static __always_inline void count_drop(void)
{
	__u32 slot = VIGIL_DROPS_SLOT;
	__u64 *drops = bpf_map_lookup_elem(&PROCESS_DROPS, &slot);

	if (drops)
		__sync_fetch_and_add(drops, 1);
}

static __always_inline void fill_header(struct vigil_header *h, __u32 kind)
{
	h->kind = kind;
	h->flags = 0;
	h->ktime_ns = bpf_ktime_get_boot_ns();
}

/* Everything about `p`'s process that every process record carries. */
static __always_inline void fill_task(struct vigil_task *t, struct task_struct *p)
{
	struct task_struct *parent;
	struct tty_struct *tty;
	const struct cred *cred;

	/* The leader's start time is the process's, the one /proc/<pid>/stat shows. */
	t->start_boottime_ns = BPF_CORE_READ(p, group_leader, start_boottime);
	t->cgroup_id = bpf_get_current_cgroup_id();
	t->pid = BPF_CORE_READ(p, tgid);
	t->tid = BPF_CORE_READ(p, pid);

	/*
	 * real_parent is the thread that forked us; the parent *process* is its group leader, and
	 * only the leader's start time matches /proc/<ppid>/stat.
	 */
	parent = BPF_CORE_READ(p, real_parent);
	t->ppid = BPF_CORE_READ(parent, tgid);
	t->parent_start_boottime_ns = BPF_CORE_READ(parent, group_leader, start_boottime);

	/* The objective credentials, the ones /proc/<pid>/status shows. */
	cred = BPF_CORE_READ(p, real_cred);
	t->uid = BPF_CORE_READ(cred, uid.val);
	t->gid = BPF_CORE_READ(cred, gid.val);
	t->euid = BPF_CORE_READ(cred, euid.val);
	t->egid = BPF_CORE_READ(cred, egid.val);
	t->auid = BPF_CORE_READ(p, loginuid.val);
	t->sessionid = BPF_CORE_READ(p, sessionid);
	t->_pad = 0;

	BPF_CORE_READ_STR_INTO(&t->comm, p, comm);
	tty = BPF_CORE_READ(p, signal, tty);
	t->tty[0] = '\0';
	if (tty)
		bpf_probe_read_kernel_str(t->tty, sizeof(t->tty), &tty->name);
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
			e->hdr.flags |= VIGIL_EXEC_ARGS_TRUNCATED;
	} else {
		__u32 len = size & (VIGIL_ARGS_LEN - 1);

		err = bpf_probe_read_user(e->args, len, (const void *)start);
		e->args_len = len;
	}
	if (err) {
		e->args_len = 0;
		e->hdr.flags |= VIGIL_EXEC_ARGS_READ_FAILED;
	}
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct vigil_exec_record *e;
	const char *filename;
	long n;

	e = bpf_ringbuf_reserve(&PROCESS_EVENTS, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	fill_header(&e->hdr, VIGIL_KIND_EXEC);
	/* After de_thread() the exec'ing thread is the leader and comm is already the new one. */
	fill_task(&e->task, p);
	e->args_size = 0;
	e->args_len = 0;
	e->_pad[0] = e->_pad[1] = e->_pad[2] = 0;

	filename = BPF_CORE_READ(bprm, filename);
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename);
	if (n < 0) {
		e->filename[0] = '\0';
		e->filename_len = 0;
		e->hdr.flags |= VIGIL_EXEC_FILENAME_FAILED;
	} else {
		e->filename_len = (__u16)n;
	}

	read_args(e, p);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	struct vigil_fork_record *e;

	/* A new thread of an existing process is not a new process. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;

	e = bpf_ringbuf_reserve(&PROCESS_EVENTS, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	fill_header(&e->hdr, VIGIL_KIND_FORK);
	fill_task(&e->task, child);
	e->parent_tid = BPF_CORE_READ(parent, pid);
	e->_pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *p, bool group_dead)
{
	struct vigil_exit_record *e;
	struct signal_struct *signal;

	/* Threads exiting while others live on are not the process ending. */
	if (!group_dead)
		return 0;

	e = bpf_ringbuf_reserve(&PROCESS_EVENTS, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	fill_header(&e->hdr, VIGIL_KIND_EXIT);
	fill_task(&e->task, p);

	/*
	 * What wait(2) will report, as wait_task_zombie() computes it: the group's code when the
	 * group was taken down together (exit_group from a thread, a fatal signal), else the
	 * leader's own exit code (equal to p's for a single-threaded process).
	 */
	signal = BPF_CORE_READ(p, signal);
	if (BPF_CORE_READ(signal, flags) & SIGNAL_GROUP_EXIT)
		e->exit_code = BPF_CORE_READ(signal, group_exit_code);
	else
		e->exit_code = BPF_CORE_READ(p, group_leader, exit_code);
	e->_pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* GPL-compatible: bpf_probe_read_{kernel,user}{,_str} are GPL-only helpers. */
char LICENSE[] SEC("license") = "GPL";
