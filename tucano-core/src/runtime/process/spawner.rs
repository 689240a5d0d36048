//! Spawns instance processes from one long-lived thread, so that they die with the worker.
//!
//! Each child asks the kernel for SIGKILL when its parent thread ends (`PR_SET_PDEATHSIG`).
//! Linux ties that signal to the thread that forked, not the process, so every spawn happens
//! on this module's dedicated thread, which lives exactly as long as the runtime: when the
//! worker process dies — even by SIGKILL — or drops its runtime, every instance is killed.
//! Each child also leads its own process group, so a stop signals its descendants too.

use std::io;
use std::thread;

use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

struct SpawnJob {
    command: Command,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// Handle to the spawner thread; dropping it ends the thread and kills every child.
#[derive(Debug)]
pub struct Spawner {
    jobs: mpsc::Sender<SpawnJob>,
}

impl Spawner {
    /// Starts the spawner thread, attached to the current Tokio runtime.
    pub fn new() -> io::Result<Self> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| io::Error::other(format!("process runtime needs a Tokio runtime: {e}")))?;
        let (jobs, mut queue) = mpsc::channel::<SpawnJob>(64);
        thread::Builder::new()
            .name("tucano-spawner".into())
            .spawn(move || {
                while let Some(mut job) = queue.blocking_recv() {
                    let _runtime = handle.enter();
                    let _ = job.reply.send(job.command.spawn());
                }
            })?;
        Ok(Self { jobs })
    }

    /// Spawns `command` as a child that dies with this spawner's thread.
    pub async fn spawn(&self, mut command: Command) -> io::Result<Child> {
        let parent = std::process::id() as libc::pid_t;
        command.process_group(0);
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (prctl, getppid); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before the prctl took effect.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(SpawnJob { command, reply })
            .await
            .map_err(|_| io::Error::other("spawner thread has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("spawner thread has stopped"))?
    }
}
