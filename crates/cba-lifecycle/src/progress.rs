//! Progress: what an operation is doing, for a person watching (a CLI's stderr, a portal's log).

use std::time::Duration;

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A stage of the operation begins ("1/5 certificate").
    Stage(String),
    /// A detail of the current stage ("service principal: created (…)").
    Detail(String),
    /// Something the person must do now (the device-code sign-in's instructions).
    Prompt(String),
    /// A wait before trying again: throttling, a 5xx, or Entra replicating.
    Wait {
        /// Why ("AADSTS700016: the app has not replicated yet").
        reason: String,
        /// How long until the next try.
        next_try_in: Duration,
        /// Time spent on this step so far.
        elapsed: Duration,
        /// What is left of the step's deadline.
        remaining: Duration,
    },
}

/// Where progress goes. Called from async code: keep it quick (print, log, send on a channel).
pub trait Progress: Send + Sync {
    /// Something happened.
    fn event(&self, event: &Event);
}

/// Progress nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _: &Event) {}
}

impl<F: Fn(&Event) + Send + Sync> Progress for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}

pub(crate) trait ProgressExt {
    fn stage(&self, text: impl Into<String>);
    fn detail(&self, text: impl Into<String>);
}

impl<P: Progress + ?Sized> ProgressExt for P {
    fn stage(&self, text: impl Into<String>) {
        self.event(&Event::Stage(text.into()));
    }

    fn detail(&self, text: impl Into<String>) {
        self.event(&Event::Detail(text.into()));
    }
}
