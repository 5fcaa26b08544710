//! `run_until_complete` and `sleep`: one future driven by the loop.
//!
//! JavaScript's `loop.runUntilComplete(fn)` calls `fn` from a `callSoon`
//! callback and stops the loop when its promise settles; promise
//! continuations run after the callback that resolved them. Here the future
//! is polled first from a `call_soon` callback, then after each callback
//! that woke it (event_loop.rs `after_callback`); when it finishes, the loop
//! stops once the current batch is done. There is one such future per run,
//! not an executor: callbacks and watchers do the rest.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::event_loop::{EventLoop, Handle, RunError};

/// The future of a `run_until_complete`, as the loop sees it.
pub(crate) trait MainTask {
    /// Whether it was woken since it was last polled (and clears that).
    fn take_woken(&self) -> bool;
    /// Polls it; when it finishes, stops the loop.
    fn poll(&self, event_loop: &EventLoop);
}

/// A waker that only raises a flag: the loop looks at it between callbacks.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

struct Task<F: Future> {
    future: RefCell<Option<Pin<Box<F>>>>,
    output: RefCell<Option<F::Output>>,
    woken: Arc<Flag>,
}

impl<F: Future> MainTask for Task<F> {
    fn take_woken(&self) -> bool {
        self.woken.0.swap(false, Ordering::Relaxed)
    }

    fn poll(&self, event_loop: &EventLoop) {
        let mut slot = self.future.borrow_mut();
        let Some(future) = slot.as_mut() else {
            return;
        };
        let waker = Waker::from(self.woken.clone());
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            *slot = None;
            *self.output.borrow_mut() = Some(output);
            event_loop.stop();
        }
    }
}

impl EventLoop {
    /// Runs the loop until `future` finishes and returns its output; first
    /// polled from a `call_soon` callback. Fails with [`RunError::Stopped`]
    /// if `stop()` ends the run first, and with
    /// [`RunError::WouldWaitForever`] if nothing is left that could wake it.
    pub fn run_until_complete<F: Future + 'static>(
        &self,
        future: F,
    ) -> Result<F::Output, RunError> {
        if self.is_running() {
            return Err(RunError::AlreadyRunning);
        }
        let task = Rc::new(Task {
            future: RefCell::new(Some(Box::pin(future))),
            output: RefCell::new(None),
            woken: Arc::new(Flag(AtomicBool::new(false))),
        });
        *self.shared.main.borrow_mut() = Some(task.clone());
        let first = task.clone();
        let event_loop = self.downgrade();
        self.call_soon(move || {
            if let Some(shared) = event_loop.upgrade() {
                first.poll(&EventLoop::from_shared(shared));
            }
        });
        let outcome = self.run_forever();
        *self.shared.main.borrow_mut() = None;
        let output = task.output.borrow_mut().take();
        match (output, outcome) {
            (Some(output), _) => Ok(output),
            (None, Err(error)) => Err(error),
            (None, Ok(())) => Err(RunError::Stopped),
        }
    }

    /// A future that finishes `ms` after the loop's time. The timer starts
    /// now, as JavaScript's `loop.sleep` does, not at the first poll;
    /// dropping the future cancels it.
    pub fn sleep(&self, ms: f64) -> Sleep {
        let state = Rc::new(SleepState {
            done: Cell::new(false),
            waker: RefCell::new(None),
        });
        let fired = state.clone();
        let timer = self.call_later(ms, move || {
            fired.done.set(true);
            if let Some(waker) = fired.waker.borrow_mut().take() {
                waker.wake();
            }
        });
        Sleep { state, timer }
    }
}

struct SleepState {
    done: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// [`EventLoop::sleep`]'s future.
pub struct Sleep {
    state: Rc<SleepState>,
    timer: Handle,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.state.done.get() {
            return Poll::Ready(());
        }
        *self.state.waker.borrow_mut() = Some(context.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if !self.state.done.get() {
            self.timer.cancel();
        }
    }
}
