//! cba-http's integration tests: real connections to local servers.

mod deadline;
mod tls;
