//! Kernel clocks to wall-clock milliseconds, and the clock ticks `/proc/<pid>/stat` uses.
//!
//! eBPF stamps records with `CLOCK_BOOTTIME` (it counts suspend, unlike `CLOCK_MONOTONIC`), the
//! proc connector with `CLOCK_MONOTONIC`, and process start times are boot-time nanoseconds
//! (`task->start_boottime`) or ticks of it (`/proc/<pid>/stat` field 22). [`Clocks`] samples the
//! offsets to `CLOCK_REALTIME` once per batch so NTP steps are picked up.

const NANOS_PER_SEC: u64 = 1_000_000_000;

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and `clock` is one of the fixed clock ids below.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    i128::from(ts.tv_sec) * i128::from(NANOS_PER_SEC) + i128::from(ts.tv_nsec)
}

/// Offsets from the kernel's clocks to the wall clock, sampled at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clocks {
    real_minus_boot_ns: i128,
    real_minus_mono_ns: i128,
}

impl Clocks {
    /// Samples the offsets now.
    pub(crate) fn now() -> Self {
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        let real = clock_ns(libc::CLOCK_REALTIME);
        let mono = clock_ns(libc::CLOCK_MONOTONIC);
        Self {
            real_minus_boot_ns: real - boot,
            real_minus_mono_ns: real - mono,
        }
    }

    /// Wall-clock milliseconds of a `CLOCK_BOOTTIME` instant.
    pub(crate) fn boot_ns_to_ms(self, boot_ns: u64) -> i64 {
        ns_to_ms(i128::from(boot_ns) + self.real_minus_boot_ns)
    }

    /// Wall-clock milliseconds of a `CLOCK_MONOTONIC` instant.
    pub(crate) fn mono_ns_to_ms(self, mono_ns: u64) -> i64 {
        ns_to_ms(i128::from(mono_ns) + self.real_minus_mono_ns)
    }
}

fn ns_to_ms(ns: i128) -> i64 {
    i64::try_from(ns / 1_000_000).unwrap_or(0)
}

/// `USER_HZ` as user space sees it (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub(crate) fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

/// Boot-time nanoseconds to clock ticks, exactly as the kernel's `nsec_to_clock_t` computes
/// `/proc/<pid>/stat` starttime, so both sources derive the same `process.uid`.
pub(crate) fn boot_ns_to_ticks(boot_ns: u64, hz: u64) -> u64 {
    boot_ns / (NANOS_PER_SEC / hz.max(1))
}

/// Clock ticks back to boot-time nanoseconds (10 ms resolution at 100 Hz).
pub(crate) fn ticks_to_boot_ns(ticks: u64, hz: u64) -> u64 {
    ticks.saturating_mul(NANOS_PER_SEC / hz.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_trip_at_user_hz() {
        assert_eq!(boot_ns_to_ticks(1_234_567_890, 100), 123);
        assert_eq!(ticks_to_boot_ns(123, 100), 1_230_000_000);
    }

    #[test]
    fn boot_and_mono_offsets_give_current_wall_time() {
        let clocks = Clocks::now();
        let boot = u64::try_from(clock_ns(libc::CLOCK_BOOTTIME)).unwrap_or(0);
        let mono = u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0);
        let now = vigil_ocsf::now_ms();
        assert!((clocks.boot_ns_to_ms(boot) - now).abs() < 1000);
        assert!((clocks.mono_ns_to_ms(mono) - now).abs() < 1000);
    }
}
