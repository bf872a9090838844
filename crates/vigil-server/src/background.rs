//! Analysis work on threads of lower CPU priority, so that it never holds up ingest.
//!
//! The server's async workers carry the latency-critical path: agents' batches are read,
//! validated, handed to the store and acknowledged there, and an agent keeps its events
//! buffered until then. Evaluating a page of the log against the rules, or reading a page
//! for the hunting index, is throughput work of many milliseconds: on an async worker it
//! would hold that worker (one of two on a 2-core host) while batches wait, and at the same
//! CPU priority it would take its share of a busy machine from them. A [`Lane`] runs such work
//! on a thread of its own at nice [`NICE`]: while the machine has CPU to spare it runs at full
//! speed; when it does not, ingest runs first and analysis catches up after. Detection's lag
//! grows under overload instead of acknowledgements stalling.

use std::sync::mpsc;

use tokio::sync::oneshot;

/// The analysis threads' niceness (0 is the default; 19 the lowest priority).
const NICE: libc::c_int = 10;

type Work = Box<dyn FnOnce() + Send>;

/// A thread of lower priority that runs closures one at a time, in order. The thread starts
/// with the first closure, so a worker can own a lane from its (infallible) constructor.
pub(crate) struct Lane {
    name: String,
    work: std::sync::OnceLock<mpsc::Sender<Work>>,
}

impl Lane {
    /// A lane whose thread will be named `name`.
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            work: std::sync::OnceLock::new(),
        }
    }

    /// Runs `job` on the lane's thread (started now if it is not yet) and returns its result.
    /// `None` if the thread could not be started (said in the log) or is gone (a job
    /// panicked).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let sent = self.sender()?.send(Box::new(move || {
            let _ = tx.send(job());
        }));
        if sent.is_err() {
            return None;
        }
        rx.await.ok()
    }

    /// The channel to the lane's thread, starting the thread if needed. If the thread cannot
    /// lower its priority it says so and runs at the default.
    fn sender(&self) -> Option<&mpsc::Sender<Work>> {
        if let Some(work) = self.work.get() {
            return Some(work);
        }
        let (work, rx) = mpsc::channel::<Work>();
        let thread = self.name.clone();
        let started = std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || {
                lower_priority(&thread);
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
        match started {
            Ok(_) => Some(self.work.get_or_init(|| work)),
            Err(error) => {
                tracing::error!(thread = %self.name, %error, "Cannot start an analysis thread");
                None
            }
        }
    }
}

/// Lowers the calling thread's CPU priority to [`NICE`] (on Linux `setpriority` with
/// `PRIO_PROCESS` and 0 applies to the calling thread only).
fn lower_priority(thread: &str) {
    // SAFETY: plain syscall on the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(thread, %error, "Cannot lower the analysis thread's priority; it runs at the default");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work runs on the lane's own thread, in order, at the lower priority.
    #[tokio::test]
    async fn work_runs_in_order_on_a_lower_priority_thread() {
        let lane = Lane::new("vigil-test-lane");
        let first = lane
            .run(|| {
                // SAFETY: reads the calling thread's priority.
                let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
                (std::thread::current().name().map(str::to_owned), nice)
            })
            .await
            .unwrap();
        assert_eq!(first.0.as_deref(), Some("vigil-test-lane"));
        assert_eq!(first.1, NICE);
        let mut seen = Vec::new();
        for i in 0..3 {
            seen.push(lane.run(move || i * 2).await.unwrap());
        }
        assert_eq!(seen, [0, 2, 4]);
        assert_eq!(lane.run(|| -> u8 { panic!("job fails") }).await, None);
    }
}
