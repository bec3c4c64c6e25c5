//! What `setup`, `status`, `cert rotate`, `teardown` and `demo` share: the library's services built from the
//! settings, progress on stderr, and library errors turned into exit codes with a message that names the
//! object and the fix.

use std::sync::Arc;

use cba_lifecycle::{Event, Progress, Services};
use cba_token::{ErrorKind, TokenClient};

use crate::exit::{Exit, fail};
use crate::output::{self, Style};
use crate::settings::Urls;

/// Progress settings for stderr.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub style: Style,
    /// Show every retry wait (the demo), not only those of a second or more.
    pub all_waits: bool,
}

impl Ui {
    pub fn step(&self, text: impl std::fmt::Display) {
        output::info(text);
    }

    pub fn detail(&self, text: &str) {
        output::info(self.style.dim(&format!("  {text}")));
    }
}

impl Progress for Ui {
    fn event(&self, event: &Event) {
        use std::io::IsTerminal as _;
        let terminal = std::io::stderr().is_terminal();
        output::progress(|open| self.render(event, terminal, open));
    }
}

impl Ui {
    /// How `event` shows on stderr. On a terminal the waits of a step rewrite one line in place (`\r`, clear
    /// to the end of the line: reason, time so far, what is left of the step's budget), ended by the next
    /// other event; elsewhere (a log file, a pipe) each wait is a line of its own. `open`: such a line is
    /// showing. Returns the bytes and whether a wait line is showing after them.
    fn render(&self, event: &Event, terminal: bool, open: bool) -> (String, bool) {
        let end_wait_line = if open { "\n" } else { "" };
        let line = |text: String| (format!("{end_wait_line}{text}\n"), false);
        match event {
            Event::Stage(text) => line(text.clone()),
            Event::Detail(text) => line(self.style.dim(&format!("  {text}"))),
            Event::Prompt(text) => line(self.style.warning(text)),
            Event::Wait { reason, next_try_in, elapsed, remaining } if terminal => {
                let text = format!(
                    "  {reason} — retrying in {:.1} s ({} so far, {} left)",
                    next_try_in.as_secs_f64(),
                    seconds(*elapsed),
                    seconds(*remaining)
                );
                (format!("\r{}\x1b[K", self.style.dim(&text)), true)
            }
            Event::Wait { reason, next_try_in, elapsed, remaining } => {
                let so_far = if elapsed.is_zero() {
                    String::new()
                } else {
                    format!(", {} so far, {} left", seconds(*elapsed), seconds(*remaining))
                };
                line(self.style.dim(&format!("  {reason} — retrying in {:.1} s{so_far}", next_try_in.as_secs_f64())))
            }
            _ => (String::new(), open),
        }
    }
}

/// `42 s`, `4 m 05 s`.
fn seconds(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s < 60 { format!("{s} s") } else { format!("{} m {:02} s", s / 60, s % 60) }
}

/// A token client for `urls` (retries per cba-token's policy; no cache: these commands want fresh answers).
pub fn token_client(urls: &Urls, http: &cba_http::HttpConfig) -> anyhow::Result<TokenClient> {
    TokenClient::builder()
        .cloud(urls.cloud)
        .authority(urls.token_endpoints().authority)
        .http_config(http)
        .build()
        .map_err(|e| token_failure(e, "configuring the token client"))
}

/// The library's services for `urls`, with progress on stderr: one HTTP configuration (SSL_CERT_FILE and
/// SSL_CERT_DIR roots, the user agent) for the token and Graph clients alike.
pub fn services(urls: &Urls, ui: Ui) -> anyhow::Result<Services> {
    let loopback = [&urls.login, &urls.graph].iter().all(|u| u.starts_with("http://"));
    let http = crate::http::http_config(loopback)?;
    Ok(Services {
        cloud: urls.cloud,
        endpoints: urls.for_profile(),
        tokens: token_client(urls, &http)?,
        http,
        retry: cba_graph::RetryPolicy::default(),
        clock: Arc::new(cba_http::SystemClock),
        progress: Arc::new(ui),
        all_waits: ui.all_waits,
    })
}

/// A lifecycle failure as an exit code and a message naming what failed and what to do.
pub fn lifecycle_failure(e: cba_lifecycle::Error) -> anyhow::Error {
    use cba_lifecycle::Error as L;
    match e {
        L::Graph { doing, source } => graph_failure(source, &doing),
        L::Token { doing, source } => token_failure(source, &doing),
        e @ L::NotProven { .. } => fail(Exit::Verify, format!("{e}; run `cba status`, or rerun with a longer --wait")),
        e @ L::Store { .. } => fail(Exit::BadInput, chain(&e)),
        e @ L::Keys { .. } => fail(Exit::BadInput, chain(&e)),
        e @ L::ProfileOfOtherApp { .. } => fail(Exit::BadInput, format!("{e}: pass --profile with another file")),
        e @ L::RecordedAppRenamed { .. } => {
            fail(Exit::BadInput, format!("{e}: rename it back, or pass another --profile"))
        }
        e @ L::Incomplete { .. } => {
            fail(Exit::BadInput, format!("{e}; run `cba setup` with this profile to finish it"))
        }
        e @ L::CertificateExpired { .. } => fail(
            Exit::BadInput,
            format!("{e}; rerun with --admin device-code|token|cert so an administrator replaces it"),
        ),
        e @ L::CertificateMismatch { .. } => fail(Exit::BadInput, e),
        L::UnusableCertificate { location, problem } => {
            let hint =
                crate::hints::cert_problem_hint(&problem).unwrap_or("use another --cert, or omit it to make one");
            fail(Exit::BadInput, format!("{location}: {problem}; {hint}"))
        }
        e @ L::WrongTenant { .. } => {
            fail(Exit::Auth, format!("{e}: nothing was changed; sign in to the right tenant, or fix --tenant"))
        }
        e @ L::TenantUnconfirmed { .. } => fail(
            Exit::Auth,
            format!(
                "{}: nothing was changed; use a Graph token that carries User.Read (or Organization.Read.All), \
                 give --tenant as the tenant id, or sign in with --admin device-code",
                chain(&e)
            ),
        ),
        e @ L::MayStillExist { .. } => fail(
            Exit::Remote,
            format!("{e}: rerun `cba setup` with this profile to finish it, or run teardown again in a few minutes"),
        ),
        e @ L::NotMultiTenant { .. } => fail(
            Exit::BadInput,
            format!("{e}; run `cba setup --multi-tenant` with the home profile to switch it (said in its output)"),
        ),
        e @ L::NotInFleet { .. } => fail(Exit::Usage, format!("{e}; `cba fleet status` lists the fleet's tenants")),
        e @ L::ConsentPending { .. } => {
            fail(Exit::Verify, format!("{e}; rerun `cba fleet add` with --wait once the link was sent"))
        }
        e @ L::NotProvenInTenants { .. } => fail(
            Exit::Verify,
            format!("{e}; run `cba fleet status` to see which link is broken there, then rotate again"),
        ),
        e @ L::Invalid { .. } => fail(Exit::Usage, e),
        L::Exchange { doing, source } => exchange_failure(source, &doing),
        e @ L::ExchangeObject { .. } => fail(Exit::BadInput, e),
        e @ L::ExchangeCustomizationNeeded { .. } => fail(
            Exit::Remote,
            format!(
                "{}; rerun with --yes to run Enable-OrganizationCustomization, or use an existing role group \
                 (--exchange-role-group) instead of a custom one",
                chain(&e)
            ),
        ),
        e @ L::ExchangeNotEffective { .. } => fail(
            Exit::Verify,
            format!("{e}; rerun `cba setup` with this profile and a longer --wait, or check later with `cba status`"),
        ),
        e => fail(Exit::Internal, chain(&e)),
    }
}

/// An Exchange failure of the role group steps as an exit code and a message naming what to do.
pub fn exchange_failure(e: cba_exo::Error, doing: &str) -> anyhow::Error {
    use cba_exo::Error as E;
    let mut text = format!("{doing}: {}", chain(&e));
    let exit = match &e {
        E::NotAllowed { .. } | E::UnsupportedRole { .. } => {
            text.push_str(
                "; the Exchange sign-in needs the Role Management role: sign in as an Exchange Administrator or \
                 Global Administrator (Organization Management), or give the provisioning app (--exchange-admin \
                 cert) a role group holding Role Management",
            );
            Exit::Permission
        }
        E::Unauthorized { .. } | E::Token { .. } => {
            text.push_str("; get a new delegated Exchange token (CBA_EXO_ADMIN_TOKEN) or sign in with --exchange-admin device-code");
            Exit::Auth
        }
        E::Config { .. } | E::Endpoint(_) => Exit::Usage,
        E::Parameters { .. } => Exit::BadInput,
        E::Tls { failure, .. } => {
            text.push_str(&format!("; {}", crate::http::tls_failure_hint(failure)));
            Exit::Remote
        }
        _ => Exit::Remote,
    };
    fail(exit, text)
}

/// A Graph failure as an exit code and a message naming what failed and what to do.
pub fn graph_failure(e: cba_graph::Error, doing: &str) -> anyhow::Error {
    use cba_graph::Error as G;
    let mut text = format!("{doing}: {}", chain(&e));
    let exit = if let Some(failure) = e.tls_failure() {
        text.push_str(&format!("; {}", crate::http::tls_failure_hint(failure)));
        Exit::Remote
    } else if e.is_permission_denied() {
        let role = e.required_role_hint().unwrap_or("a suitable Entra role");
        text.push_str(&format!(
            "; the signed-in administrator needs the Entra role {role} (and the sign-in's consent to \
             Application.ReadWrite.All, AppRoleAssignment.ReadWrite.All, RoleManagement.ReadWrite.Directory): \
             ask a Global Administrator, or sign in as one; a provisioning app (--admin cert) needs those three \
             as admin-consented Microsoft Graph application permissions instead"
        ));
        Exit::Permission
    } else {
        match e.root() {
            G::Api { status: 401, .. } => {
                text.push_str("; the admin's Graph token was refused: sign in again (a fresh CBA_GRAPH_TOKEN)");
                Exit::Auth
            }
            G::Api { status, .. } if *status == 429 || *status >= 500 => {
                text.push_str("; Microsoft Graph kept failing until the deadline: try again later or raise --wait");
                Exit::Remote
            }
            G::Api { status: 404, .. } => {
                text.push_str("; Entra did not show the object before the deadline (replication): rerun the command, or raise --wait");
                Exit::Remote
            }
            G::Transport { .. } => {
                text.push_str("; check the network, HTTPS_PROXY, or --graph-url");
                Exit::Remote
            }
            G::Token { source } => match source.downcast_ref::<cba_token::Error>() {
                Some(t) => kind_exit(t),
                None => Exit::Auth,
            },
            G::Invalid { .. } | G::UnknownRole { .. } => Exit::Usage,
            G::AmbiguousApplication { .. } | G::ExchangeNotAvailable { .. } => Exit::BadInput,
            G::LastKey { .. } => Exit::Verify,
            G::Api { .. } => Exit::Remote,
            _ => Exit::Internal,
        }
    };
    fail(exit, text)
}

/// A token failure: AADSTS refusals → 4, network/5xx/deadline → 6, unusable input → 3.
pub fn token_failure(e: cba_token::Error, doing: &str) -> anyhow::Error {
    let hint =
        crate::hints::token_hint(&e).map(|h| format!("\n  what to do: {}", lowercase_first(&h))).unwrap_or_default();
    fail(kind_exit(&e), format!("{doing}: {}{hint}", chain(&e)))
}

/// "Run it again" → "run it again", to follow a colon.
fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

pub fn kind_exit(e: &cba_token::Error) -> Exit {
    if matches!(e, cba_token::Error::TokenExpired { .. } | cba_token::Error::TokenExpiresSoon { .. }) {
        return Exit::Auth;
    }
    match e.kind() {
        ErrorKind::Auth => Exit::Auth,
        ErrorKind::Remote => Exit::Remote,
        ErrorKind::Input => Exit::BadInput,
        _ => Exit::Internal,
    }
}

pub use cba_lifecycle::status::chain;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::output::ColorChoice;

    /// The bytes a run of events puts on stderr.
    fn rendered(events: &[Event], terminal: bool) -> String {
        let ui = Ui { style: Style::new(ColorChoice::Never, true), all_waits: false };
        let (mut out, mut open) = (String::new(), false);
        for event in events {
            let (text, now_open) = ui.render(event, terminal, open);
            out.push_str(&text);
            open = now_open;
        }
        out
    }

    fn wait(elapsed: u64, remaining: u64) -> Event {
        Event::Wait {
            reason: "AADSTS700016: the app has not replicated yet".into(),
            next_try_in: Duration::from_millis(1500),
            elapsed: Duration::from_secs(elapsed),
            remaining: Duration::from_secs(remaining),
        }
    }

    #[test]
    fn waits_rewrite_one_line_on_a_terminal() {
        let events = [Event::Stage("3/5 service principal".into()), wait(0, 300), wait(2, 298), wait(65, 235)];
        let mut events = events.to_vec();
        events.push(Event::Detail("service principal: created".into()));
        assert_eq!(
            rendered(&events, true),
            "3/5 service principal\n\
             \r  AADSTS700016: the app has not replicated yet — retrying in 1.5 s (0 s so far, 5 m 00 s left)\x1b[K\
             \r  AADSTS700016: the app has not replicated yet — retrying in 1.5 s (2 s so far, 4 m 58 s left)\x1b[K\
             \r  AADSTS700016: the app has not replicated yet — retrying in 1.5 s (1 m 05 s so far, 3 m 55 s left)\x1b[K\
             \n  service principal: created\n"
        );
    }

    #[test]
    fn waits_are_plain_lines_elsewhere() {
        let events = [wait(0, 300), wait(2, 298), Event::Stage("4/5 grant".into())];
        assert_eq!(
            rendered(&events, false),
            "  AADSTS700016: the app has not replicated yet — retrying in 1.5 s\n\
             \x20 AADSTS700016: the app has not replicated yet — retrying in 1.5 s, 2 s so far, 4 m 58 s left\n\
             4/5 grant\n"
        );
    }
}
