/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Every record Vigil's eBPF programs write into their ring buffers.
 *
 * This layout is shared with user space: src/source/ebpf/record.rs mirrors each struct as one
 * #[repr(C)] struct with size and offset asserts, and the _Static_asserts below pin the sizes on
 * this side. Change both together. Padding is spelled out so both compilers agree byte for byte.
 *
 * Each record starts with struct vigil_header; `kind` tells user space which struct follows, so
 * one ring buffer can carry several kinds (process.bpf.c writes exec, fork and exit records into
 * PROCESS_EVENTS, keeping their order; tcp.bpf.c writes TCP records into TCP_EVENTS).
 */
#ifndef VIGIL_RECORDS_H
#define VIGIL_RECORDS_H

#define VIGIL_COMM_LEN 16
#define VIGIL_TTY_LEN 32
#define VIGIL_FILENAME_LEN 256
/* Power of two: the program masks lengths with (VIGIL_ARGS_LEN - 1) to bound reads. */
#define VIGIL_ARGS_LEN 4096
#define VIGIL_NET_HDR_LEN 40 /* a whole IPv6 header, or an IPv4 header and then some */
#define VIGIL_TCP_HDR_LEN 20 /* the fixed part of the TCP header */

/* vigil_header.kind */
#define VIGIL_KIND_EXEC 1
#define VIGIL_KIND_FORK 2
#define VIGIL_KIND_EXIT 3
#define VIGIL_KIND_TCP_STATE 4
#define VIGIL_KIND_TCP_RESET 5

/* vigil_header.flags of exec records */
#define VIGIL_EXEC_ARGS_TRUNCATED 0x1   /* argv was longer than VIGIL_ARGS_LEN */
#define VIGIL_EXEC_ARGS_READ_FAILED 0x2 /* bpf_probe_read_user of argv failed */
#define VIGIL_EXEC_FILENAME_FAILED 0x4  /* reading bprm->filename failed */

/* vigil_header.flags of TCP records */
#define VIGIL_TCP_OWNER 0x1          /* owner holds the socket's process */
#define VIGIL_TCP_HDR_FAILED 0x2     /* reading the reset's packet headers failed */

/* vigil_tcp_record.direction: who initiated the connection, as the kernel let us learn it. */
#define VIGIL_DIR_UNKNOWN 0
#define VIGIL_DIR_INBOUND 1
#define VIGIL_DIR_OUTBOUND 2

/* Index of the single slot of the *_DROPS arrays: ring buffer reservations that failed. */
#define VIGIL_DROPS_SLOT 0

struct vigil_header {
	__u32 kind;     /* VIGIL_KIND_* */
	__u32 flags;    /* per kind, see above */
	__u64 ktime_ns; /* bpf_ktime_get_boot_ns() at the event (CLOCK_BOOTTIME) */
};

/* The process a process-family record is about. */
struct vigil_task {
	__u64 start_boottime_ns;        /* group leader's start_boottime: process start */
	__u64 parent_start_boottime_ns; /* real_parent->group_leader->start_boottime */
	__u64 cgroup_id;                /* bpf_get_current_cgroup_id() (cgroup v2) */
	__u32 pid;                      /* tgid: the process id user space sees */
	__u32 tid;                      /* the thread */
	__u32 ppid;                     /* real_parent->tgid */
	__u32 uid;                      /* real_cred: the objective credentials */
	__u32 gid;
	__u32 euid;
	__u32 egid;
	__u32 auid;                     /* loginuid; 0xffffffff when unset */
	__u32 sessionid;                /* audit session id; 0xffffffff when unset */
	__u32 _pad;
	char comm[VIGIL_COMM_LEN];
	char tty[VIGIL_TTY_LEN];        /* signal->tty->name ("pts/0"), empty without a tty */
};

/* One successful execve (tp_btf/sched_process_exec). */
struct vigil_exec_record {
	struct vigil_header hdr;
	struct vigil_task task;
	__u32 args_size;           /* mm->arg_end - mm->arg_start: the real argv size in bytes */
	__u32 args_len;            /* bytes of argv copied into args[] */
	__u16 filename_len;        /* bytes in filename[] including the NUL, 0 if unread */
	__u16 _pad[3];
	char filename[VIGIL_FILENAME_LEN];
	char args[VIGIL_ARGS_LEN]; /* argv strings, NUL-separated, as in /proc/<pid>/cmdline */
};

/* A new process (tp_btf/sched_process_fork, thread-group leaders only). task is the child. */
struct vigil_fork_record {
	struct vigil_header hdr;
	struct vigil_task task;
	__u32 parent_tid; /* the thread that called fork/clone */
	__u32 _pad;
};

/* The last thread of a process exited (tp_btf/sched_process_exit with group_dead). */
struct vigil_exit_record {
	struct vigil_header hdr;
	struct vigil_task task;
	__s32 exit_code; /* wait(2) status: (code << 8) | signal, 0x80 when it dumped core */
	__u32 _pad;
};

/* The process that owns a socket: the one that called connect() or listen(). */
struct vigil_owner {
	__u64 start_boottime_ns;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 _pad;
	char comm[VIGIL_COMM_LEN];
};

/*
 * A TCP state transition (VIGIL_KIND_TCP_STATE: tp_btf/inet_sock_set_state), or a reset sent
 * for a segment that matched no socket (VIGIL_KIND_TCP_RESET: tp_btf/tcp_send_reset with
 * sk == NULL). State records fill the addresses and ports from the socket; reset records leave
 * them zero and carry the offending segment's raw IP and TCP headers instead, which user space
 * parses (src/source/ebpf/tcp.rs).
 */
struct vigil_tcp_record {
	struct vigil_header hdr;
	struct vigil_owner owner; /* valid with VIGIL_TCP_OWNER */
	__u32 netns;              /* network namespace inode number */
	__s32 sk_err;             /* sk->sk_err: ECONNREFUSED, ETIMEDOUT, ... on a failed connect */
	__u16 family;             /* AF_INET or AF_INET6 */
	__u16 lport;              /* local port, host order */
	__u16 rport;              /* remote port, host order */
	__u8 old_state;           /* TCP_* of include/net/tcp_states.h */
	__u8 new_state;
	__u8 direction;           /* VIGIL_DIR_* */
	__u8 _pad[3];
	__u32 reset_reason;       /* enum sk_rst_reason of reset records */
	__u8 laddr[16];           /* local address; IPv4 in the first 4 bytes, network order */
	__u8 raddr[16];           /* remote address */
	__u16 net_hdr_len;        /* bytes copied into net_hdr */
	__u16 tcp_hdr_len;        /* bytes copied into tcp_hdr */
	__u8 net_hdr[VIGIL_NET_HDR_LEN];
	__u8 tcp_hdr[VIGIL_TCP_HDR_LEN];
};

_Static_assert(sizeof(struct vigil_header) == 16, "update record.rs with records.h");
_Static_assert(sizeof(struct vigil_task) == 112, "update record.rs with records.h");
_Static_assert(sizeof(struct vigil_exec_record) == 4496, "update record.rs with records.h");
_Static_assert(sizeof(struct vigil_fork_record) == 136, "update record.rs with records.h");
_Static_assert(sizeof(struct vigil_exit_record) == 136, "update record.rs with records.h");
_Static_assert(sizeof(struct vigil_owner) == 40, "update record.rs with records.h");
_Static_assert(sizeof(struct vigil_tcp_record) == 176, "update record.rs with records.h");

#endif /* VIGIL_RECORDS_H */
