//! The engine-speed measurement on a worker thread: the event loop keeps drawing and handling
//! keys while it runs, polls progress and the result from a channel, and dropping the worker
//! (closing the pane, quitting) cancels it and waits for the thread to stop.

use crate::analysis::LatencyReport;
use crate::session::SpeedJob;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::thread::JoinHandle;

/// What the engine-speed pane shows.
#[derive(Debug)]
pub enum SpeedState {
    /// Measuring: `done` of `total` runs finished.
    Running {
        done: usize,
        total: usize,
        worker: Worker,
    },
    Done(LatencyReport),
    Failed(String),
}

#[derive(Debug)]
enum Message {
    Progress(usize, usize),
    Finished(Result<LatencyReport, String>),
}

/// A running measurement.
#[derive(Debug)]
pub struct Worker {
    cancel: Arc<AtomicBool>,
    rx: Receiver<Message>,
    thread: Option<JoinHandle<()>>,
}

impl SpeedState {
    /// Starts `job` on a new thread.
    pub fn start(job: SpeedJob) -> SpeedState {
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        let total = job.steps();
        let stop = Arc::clone(&cancel);
        let thread = std::thread::spawn(move || {
            let progress_tx = tx.clone();
            let result = job.run(&mut |done, total| {
                // A closed channel means the pane is gone: stop as if cancelled.
                progress_tx.send(Message::Progress(done, total)).is_ok()
                    && !stop.load(Ordering::Relaxed)
            });
            let _ = tx.send(Message::Finished(result.map_err(|e| e.to_string())));
        });
        SpeedState::Running {
            done: 0,
            total,
            worker: Worker {
                cancel,
                rx,
                thread: Some(thread),
            },
        }
    }

    /// Takes in what the worker sent since the last call.
    pub fn poll(&mut self) {
        loop {
            let SpeedState::Running {
                done,
                total,
                worker,
            } = self
            else {
                return;
            };
            match worker.rx.try_recv() {
                Ok(Message::Progress(d, t)) => (*done, *total) = (d, t),
                Ok(Message::Finished(Ok(report))) => *self = SpeedState::Done(report),
                Ok(Message::Finished(Err(e))) => *self = SpeedState::Failed(e),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    *self = SpeedState::Failed("the measurement stopped unexpectedly".into());
                }
            }
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, SpeedState::Running { .. })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The worker checks the flag after every run, so this waits at most one run.
            let _ = thread.join();
        }
    }
}
