#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod admin;
mod assertion;
mod cache;
mod client;
mod cloud;
mod error;
mod http;
pub mod jwt;
mod response;
mod retry;
mod source;
mod token;

pub use assertion::{AssertionAlg, AssertionOptions, ClientAssertion, ClientCertificate, MAX_ASSERTION_LIFETIME};
pub use cache::{CACHE_FILE_NAME, CacheKey, CertFileStamp, REFRESH_MARGIN, TokenCache, default_cache_dir};
pub use cba_http::{Clock, HttpConfig, ManualClock, RetryPolicy, Sleep, SystemClock, TlsFailure, TlsFailureKind};
pub use client::{ReadyProgress, TokenClient, TokenClientBuilder, WaitOptions};
pub use cloud::{Authority, Cloud, Endpoints, Resource};
pub use error::{AADSTS_CODES, CacheExposure, Error, ErrorKind, Result, aadsts_meaning, oauth_error_meaning};
pub use http::{HttpOptions, default_http_client};
pub use source::CertificateTokenSource;
pub use token::AccessToken;

/// The HTTP crate this crate's API uses (for [`default_http_client`] and [`TokenClientBuilder::http_client`]).
pub use reqwest;
