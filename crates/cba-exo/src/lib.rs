#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod client;
mod cmdlet;
mod error;
mod params;
mod syntax;

pub use client::{
    APP_ANCHOR_MAILBOX, DEFAULT_EXCHANGE_ROOT, DEFAULT_PAGE_SIZE, Event, ExoClient, ExoClientBuilder, RawPage,
};
pub use cmdlet::{READ_ONLY_VERBS, check_cmdlet_name, is_read_only, matching_get_cmdlet};
pub use error::{CmdletErrorDetail, Error, NOT_ALLOWED_HINT, UNSUPPORTED_ROLE_HINT};
pub use params::{GENERIC_HASHTABLE, Hashtable, ParamValue, Parameters};
pub use syntax::{ParamError, ParamErrorKind, parse_param};

/// Re-exported so callers can pass a [`TokenSource`](cba_http::TokenSource) and a [`RetryPolicy`](cba_http::RetryPolicy)
/// without a direct dependency.
pub use cba_http::{RetryPolicy, StaticToken, TokenSource};
