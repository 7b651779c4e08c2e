//! The step hook: a per-thread callback every trainer calls between optimisation steps
//! (`Trainer::fit`, `Trainer::fit_gpu`, P1's full-batch loops; reelvec-models' iALS and BPR fits
//! between iterations and epochs), with the steps done and the steps planned. It reports
//! progress to a host that draws its own bar (the Python package's notebook progress bar) and
//! lets the host stop a fit cleanly: a hook that returns `false` ends the fit with
//! [`EngineError::Interrupted`] before the next step, so no model comes back and nothing is
//! saved (the Python package checks Ctrl-C there).
//!
//! The hook lives in a thread-local slot: it sees only fits run on the thread that installed it
//! ([`with_step_hook`]), and a fit without a hook pays one thread-local read per step.
//!
//! ```
//! use reelvec_engine::step_hook::{after_step, with_step_hook};
//! let stopped = with_step_hook(|p| p.done < 3, || (1..=10).try_for_each(|s| after_step(s, 10)));
//! assert!(matches!(stopped, Err(reelvec_engine::EngineError::Interrupted { done: 3 })));
//! assert!(after_step(1, 10).is_ok()); // the hook is gone again
//! ```

use std::cell::RefCell;

use crate::EngineError;

/// Where a fit stands when the hook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepProgress {
    /// Steps finished so far (1 after the first step).
    pub done: u64,
    /// Steps the fit plans (epochs x steps per epoch, or P1's steps).
    pub total: u64,
}

type Hook = Box<dyn FnMut(StepProgress) -> bool>;

thread_local! {
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

/// Runs `work` with `hook` called after every training step on this thread; the previous hook
/// (if any) is restored afterwards, also when `work` panics.
pub fn with_step_hook<R>(hook: impl FnMut(StepProgress) -> bool + 'static, work: impl FnOnce() -> R) -> R {
    struct Restore(Option<Hook>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            HOOK.with(|h| *h.borrow_mut() = previous);
        }
    }
    let previous = HOOK.with(|h| h.borrow_mut().replace(Box::new(hook)));
    let _restore = Restore(previous);
    work()
}

/// Whether this thread has a hook installed (the CPU trainer then keeps the fit on this thread,
/// where the hook lives, instead of moving it to a rayon worker).
pub fn installed() -> bool {
    HOOK.with(|h| h.try_borrow().map_or(true, |slot| slot.is_some()))
}

/// Called by the trainers after each step: runs this thread's hook, if any, and turns its
/// `false` into [`EngineError::Interrupted`].
pub fn after_step(done: u64, total: u64) -> Result<(), EngineError> {
    let keep_going = HOOK.with(|h| match h.try_borrow_mut() {
        Ok(mut slot) => slot.as_mut().is_none_or(|hook| hook(StepProgress { done, total })),
        // The hook itself is training (re-entrant): it is not called for the inner fit.
        Err(_) => true,
    });
    if keep_going {
        Ok(())
    } else {
        Err(EngineError::Interrupted { done })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_sees_every_step_and_a_false_stops_the_work() {
        let seen = std::rc::Rc::new(RefCell::new(Vec::new()));
        let log = seen.clone();
        let r = with_step_hook(
            move |p| {
                log.borrow_mut().push(p);
                p.done < 2
            },
            || (1..=5).try_for_each(|s| after_step(s, 5)),
        );
        assert!(matches!(r, Err(EngineError::Interrupted { done: 2 })), "{r:?}");
        let seen = seen.borrow();
        assert_eq!(*seen, vec![StepProgress { done: 1, total: 5 }, StepProgress { done: 2, total: 5 }]);
    }

    #[test]
    fn hooks_nest_and_restore() {
        let r = with_step_hook(
            |_| false,
            || {
                let inner = with_step_hook(|_| true, || after_step(1, 1));
                (inner, after_step(1, 1))
            },
        );
        assert!(r.0.is_ok());
        assert!(matches!(r.1, Err(EngineError::Interrupted { done: 1 })));
        assert!(after_step(1, 1).is_ok());
    }
}
