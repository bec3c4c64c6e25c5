//! The InvokeCommand client: one POST per page, pages fetched only when the caller wants more items.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cba_http::{HttpConfig, RetryPolicy, TokenSource, Verdict};
use futures::{Stream, TryStreamExt as _};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use url::Url;

use crate::error::{NOT_ALLOWED_HINT, UNSUPPORTED_ROLE_HINT};
use crate::{CmdletErrorDetail, Error, Parameters};

/// The global cloud's Exchange Online root.
pub const DEFAULT_EXCHANGE_ROOT: &str = "https://outlook.office365.com";

/// Items per page asked for with `Prefer: odata.maxpagesize` unless the builder says otherwise (the
/// ExchangeOnlineManagement module's default; the service's own default is 100).
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// The well-known system mailbox app-only requests are routed by (`X-AnchorMailbox: APP:…@{tenant}`).
pub const APP_ANCHOR_MAILBOX: &str = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";

/// Something worth telling the user while a cmdlet runs. Delivered to the builder's
/// [`on_event`](ExoClientBuilder::on_event) handler, on the task polling the stream.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A warning from the cmdlet (`@adminapi.warnings`), as PowerShell's `WARNING:` lines. Each distinct
    /// warning is reported once per invocation (the service repeats some on every page).
    Warning {
        /// The cmdlet.
        cmdlet: &'a str,
        /// The warning text.
        message: &'a str,
    },
    /// A non-terminating error from the cmdlet (`@adminapi.errors`): some items failed, the rest were returned.
    CmdletError {
        /// The cmdlet.
        cmdlet: &'a str,
        /// The error text.
        message: &'a str,
    },
    /// A request failed in a way worth retrying; the client waits `wait` and tries again.
    Retry {
        /// The cmdlet.
        cmdlet: &'a str,
        /// The attempt that failed (from 1).
        attempt: u32,
        /// The wait before the next one.
        wait: Duration,
        /// Why (`HTTP 429`, `HTTP 503`, a network error).
        reason: &'a str,
    },
    /// The service refused the token (401/403: expired, or issued before a permission changed); it was
    /// invalidated and the request is sent again once with a new one.
    TokenRenewed {
        /// The cmdlet.
        cmdlet: &'a str,
    },
    /// A page arrived.
    Page {
        /// The cmdlet.
        cmdlet: &'a str,
        /// Its number, from 1.
        number: u32,
        /// Items on it.
        items: usize,
        /// Time for the request, retries included.
        elapsed: Duration,
    },
}

type EventHandler = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// Builds an [`ExoClient`].
#[derive(Default)]
pub struct ExoClientBuilder {
    base_url: Option<String>,
    tenant_id: Option<String>,
    tokens: Option<Arc<dyn TokenSource>>,
    retry: Option<RetryPolicy>,
    page_size: Option<u32>,
    http: Option<reqwest::Client>,
    http_config: Option<HttpConfig>,
    anchor_mailbox: Option<String>,
    events: Option<EventHandler>,
    prefetch: bool,
}

impl fmt::Debug for ExoClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExoClientBuilder")
            .field("base_url", &self.base_url)
            .field("tenant_id", &self.tenant_id)
            .field("tokens", &self.tokens)
            .field("retry", &self.retry)
            .field("page_size", &self.page_size)
            .field("http_config", &self.http_config)
            .field("anchor_mailbox", &self.anchor_mailbox)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl ExoClientBuilder {
    /// The Exchange root, like `https://outlook.office365.com` (the default) or a `cba sim` URL. HTTPS only,
    /// except loopback hosts.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The tenant: its id (GUID) or a verified domain such as `contoso.onmicrosoft.com`. Required.
    pub fn tenant_id(mut self, tenant: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant.into());
        self
    }

    /// Where bearer tokens come from (required). Asked before every request, and told to
    /// [`invalidate`](TokenSource::invalidate) when the service rejects one, so a listing that outlives a
    /// token carries on with the next.
    pub fn token_source(mut self, tokens: Arc<dyn TokenSource>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// How often and how long to retry (default [`RetryPolicy::default`]). What is retried depends on the cmdlet
    /// ([`is_read_only`](crate::is_read_only)): a read after 429, 408, 5xx and network failures; a write only
    /// after what shows it did not run (429, 503 with `Retry-After`, a failed connect), any other failure of a
    /// write being [`Error::OutcomeUnknown`]. A refused TLS certificate is never retried ([`Error::Tls`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Items per page (`Prefer: odata.maxpagesize`), default [`DEFAULT_PAGE_SIZE`]. The service caps it (1000).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    /// The HTTP client, as it is (it wins over [`http_config`](Self::http_config)).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// How to connect: roots, `User-Agent`, timeouts; the configuration the token and Graph clients take too.
    /// Default: [`HttpConfig::new`] with `User-Agent: cba-exo/<version>` and 5 minutes per request. The
    /// platform trust store is not loaded for a plain-http (loopback) root, and a
    /// [`HttpConfig::request_timeout`] caps the retry policy's per-request timeout.
    pub fn http_config(mut self, config: &HttpConfig) -> Self {
        self.http_config = Some(config.clone());
        self
    }

    /// Replace the `X-AnchorMailbox` value (default `APP:SystemMailbox{bb558c35-…}@{tenant}`).
    pub fn anchor_mailbox(mut self, anchor: impl Into<String>) -> Self {
        self.anchor_mailbox = Some(anchor.into());
        self
    }

    /// Fetch the next page while the caller works through the current one (default off: strictly one page at
    /// a time). Faster when the caller spends time per item; holds up to two pages in memory, and one page may
    /// be fetched that is never used if the caller stops early. Needs a tokio runtime (else it stays off).
    pub fn prefetch(mut self, on: bool) -> Self {
        self.prefetch = on;
        self
    }

    /// Receive [`Event`]s: warnings, non-terminating errors, retries, token renewals, pages.
    pub fn on_event(mut self, handler: impl Fn(&Event<'_>) + Send + Sync + 'static) -> Self {
        self.events = Some(Arc::new(handler));
        self
    }

    /// Check the settings and build the client.
    pub fn build(self) -> Result<ExoClient, Error> {
        let root = self.base_url.as_deref().unwrap_or(DEFAULT_EXCHANGE_ROOT);
        let mut root = cba_http::check_endpoint(root)?;
        if root.query().is_some() || root.fragment().is_some() {
            return Err(config("the Exchange root takes no query or fragment (e.g. https://outlook.office365.com)"));
        }
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        let tenant = self.tenant_id.ok_or_else(|| config("a tenant id or domain is required"))?;
        if tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(config(&format!("`{tenant}` is not a tenant id (GUID) or domain (contoso.onmicrosoft.com)")));
        }
        let tokens = self.tokens.ok_or_else(|| config("a token source is required"))?;
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if page_size == 0 {
            return Err(config("the page size must be at least 1"));
        }
        let invoke_url = root
            .join(&format!("adminapi/beta/{tenant}/InvokeCommand"))
            .map_err(|e| config(&format!("cannot build the InvokeCommand URL: {e}")))?;
        let anchor_mailbox = self.anchor_mailbox.unwrap_or_else(|| format!("APP:{APP_ANCHOR_MAILBOX}@{tenant}"));
        let anchor = HeaderValue::from_str(&anchor_mailbox)
            .map_err(|_| config("the anchor mailbox is not a valid header value"))?;
        let mut retry = self.retry.unwrap_or_default();
        let http = match self.http {
            Some(c) => c,
            None => {
                let http_config = self.http_config.unwrap_or_else(|| {
                    HttpConfig::new()
                        .user_agent(concat!("cba-exo/", env!("CARGO_PKG_VERSION")))
                        .request_timeout(Duration::from_secs(300))
                });
                if let Some(limit) = http_config.request_timeout_limit() {
                    retry.request_timeout = retry.request_timeout.min(limit);
                }
                // Next links must keep the root's origin, so a plain-http (loopback) root means no TLS at all:
                // build_for skips loading the platform's trust store.
                http_config.build_for(&root).map_err(|e| config(&e.to_string()))?
            }
        };
        Ok(ExoClient {
            inner: Arc::new(Inner {
                http,
                invoke_url,
                tenant,
                anchor,
                tokens,
                retry,
                page_size,
                events: self.events,
                prefetch: self.prefetch,
                spare: Arc::default(),
            }),
        })
    }
}

fn config(message: &str) -> Error {
    Error::Config { message: message.to_string() }
}

/// A client for Exchange Online's admin REST endpoint (`POST …/adminapi/beta/{tenant}/InvokeCommand`), the
/// one the ExchangeOnlineManagement v3 module uses. Cheap to clone.
#[derive(Clone)]
pub struct ExoClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    invoke_url: Url,
    tenant: String,
    anchor: HeaderValue,
    tokens: Arc<dyn TokenSource>,
    retry: RetryPolicy,
    page_size: u32,
    events: Option<EventHandler>,
    prefetch: bool,
    spare: Arc<Spare>,
}

/// A page buffer given back by a dropped [`RawPage`], for the next body: a reused buffer is already mapped, so
/// reading a page into it costs no page faults (a fresh megabyte is 256 of them). One kept at most.
#[derive(Default)]
struct Spare(std::sync::Mutex<Option<Vec<u8>>>);

impl Spare {
    /// An empty buffer with room for `len` bytes (a spare one when there is one).
    fn take(&self, len: usize) -> Vec<u8> {
        let mut buf = self.0.lock().ok().and_then(|mut s| s.take()).unwrap_or_default();
        buf.clear();
        buf.reserve(len);
        buf
    }

    fn put(&self, buf: Vec<u8>) {
        if let Ok(mut spare) = self.0.lock()
            && spare.as_ref().is_none_or(|s| s.capacity() < buf.capacity())
        {
            *spare = Some(buf);
        }
    }
}

impl fmt::Debug for Spare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Spare")
    }
}

impl fmt::Debug for ExoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExoClient")
            .field("invoke_url", &self.inner.invoke_url.as_str())
            .field("anchor_mailbox", &self.inner.anchor)
            .field("tokens", &self.inner.tokens)
            .field("page_size", &self.inner.page_size)
            .finish_non_exhaustive()
    }
}

impl ExoClient {
    /// Start building a client.
    pub fn builder() -> ExoClientBuilder {
        ExoClientBuilder::default()
    }

    /// The URL every first page is posted to.
    pub fn invoke_url(&self) -> &str {
        self.inner.invoke_url.as_str()
    }

    /// The tenant as given to the builder.
    pub fn tenant_id(&self) -> &str {
        &self.inner.tenant
    }

    /// Items asked for per page.
    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    /// Run `cmdlet` and stream its output objects, following `@odata.nextLink` (the same body posted to each
    /// link). Lazy: nothing is sent until the stream is polled, and the next page is requested only when the
    /// items of the current one are taken, so memory holds one page whatever the result size. The stream ends
    /// after the last page or after the first error. A 204 (most `Set-*` cmdlets) is an empty stream.
    pub fn invoke(
        &self,
        cmdlet: &str,
        params: &Parameters,
    ) -> impl Stream<Item = Result<serde_json::Value, Error>> + Send + 'static + use<> {
        self.invoke_as::<serde_json::Value>(cmdlet, params)
    }

    /// [`invoke`](Self::invoke), deserializing each object as `T`: a typed struct, or
    /// `Box<serde_json::value::RawValue>` to pass objects through byte for byte (and in the service's key order).
    pub fn invoke_as<T: DeserializeOwned + Send + 'static>(
        &self,
        cmdlet: &str,
        params: &Parameters,
    ) -> impl Stream<Item = Result<T, Error>> + Send + 'static + use<T> {
        let state = Paging::<T> {
            pager: Pager::new(&self.inner, cmdlet, params),
            items: Vec::new().into_iter(),
            _item: std::marker::PhantomData,
        };
        futures::stream::unfold(state, |mut st| async move {
            let item = st.next_item().await?;
            Some((item, st))
        })
    }

    /// Run `cmdlet` and stream its output a page at a time, each object's JSON text as the service sent it
    /// (byte for byte, in the service's key order). The same paging as [`invoke`](Self::invoke) (lazy, one page
    /// held at a time, or two with [`prefetch`](ExoClientBuilder::prefetch)), and the cheapest way to pass
    /// objects through: one buffer per page and no allocation per object.
    pub fn invoke_pages(
        &self,
        cmdlet: &str,
        params: &Parameters,
    ) -> impl Stream<Item = Result<RawPage, Error>> + Send + 'static + use<> {
        let pager = Pager::<RawPage>::new(&self.inner, cmdlet, params);
        futures::stream::unfold(pager, |mut pager| async move {
            let page = pager.next_page().await?;
            Some((page, pager))
        })
    }

    /// Run `cmdlet` and collect every object of every page. For large results prefer [`invoke`](Self::invoke).
    pub async fn collect_all(&self, cmdlet: &str, params: &Parameters) -> Result<Vec<serde_json::Value>, Error> {
        self.invoke(cmdlet, params).try_collect().await
    }
}

/// One page of a cmdlet's output as the service sent it: the response text and where each object is in it.
/// From [`ExoClient::invoke_pages`].
#[derive(Debug, Clone, Default)]
pub struct RawPage {
    text: String,
    spans: Vec<Range<usize>>,
    spare: Option<Arc<Spare>>,
}

impl Drop for RawPage {
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take() {
            spare.put(std::mem::take(&mut self.text).into_bytes());
        }
    }
}

impl RawPage {
    /// Objects on the page.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// No objects on the page (a 204, or an empty `value`).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The `index`th object's JSON text, exactly as sent: valid JSON, possibly spread over several lines.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.spans.get(index).map(|span| &self.text[span.clone()])
    }

    /// Every object's JSON text, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.spans.iter().map(|span| &self.text[span.clone()])
    }

    /// Items parsed on their own (a body that is not all UTF-8): their texts end to end.
    fn from_boxes(items: Vec<Box<RawValue>>) -> RawPage {
        let mut page = RawPage { text: String::new(), spans: Vec::with_capacity(items.len()), spare: None };
        for raw in items {
            let at = page.text.len();
            page.text.push_str(raw.get());
            page.spans.push(at..page.text.len());
        }
        page
    }
}

/// A page of these objects (in tests, or to hand other output to code that takes pages).
impl FromIterator<Box<RawValue>> for RawPage {
    fn from_iter<I: IntoIterator<Item = Box<RawValue>>>(items: I) -> RawPage {
        RawPage::from_boxes(items.into_iter().collect())
    }
}

/// How a page's `value` is held once parsed: boxed raw objects (the item streams) or spans of the page's
/// text ([`RawPage`]).
trait PageItems: Default + Send + Sized + 'static {
    /// The body (not empty) as an OData collection; on failure the error and the body, for the message.
    fn parse(body: Vec<u8>) -> Result<(Self, PageMeta), (serde_json::Error, Vec<u8>)>;
    fn count(&self) -> usize;
    /// Give the page's buffer back to `spare` when the page is dropped.
    fn recycle_into(&mut self, _spare: &Arc<Spare>) {}
}

impl PageItems for Vec<Box<RawValue>> {
    fn parse(body: Vec<u8>) -> Result<(Self, PageMeta), (serde_json::Error, Vec<u8>)> {
        match serde_json::from_slice::<Page>(&body) {
            Ok(page) => {
                Ok((page.value, PageMeta { next_link: page.next_link, warnings: page.warnings, errors: page.errors }))
            }
            Err(e) => Err((e, body)),
        }
    }

    fn count(&self) -> usize {
        self.len()
    }
}

impl PageItems for RawPage {
    fn parse(body: Vec<u8>) -> Result<(Self, PageMeta), (serde_json::Error, Vec<u8>)> {
        let text = match String::from_utf8(body) {
            Ok(text) => text,
            // Not all UTF-8: parse the bytes as the item streams do (so the same bodies are accepted) and keep
            // the objects' own texts.
            Err(e) => {
                let (items, meta) = <Vec<Box<RawValue>>>::parse(e.into_bytes())?;
                return Ok((RawPage::from_boxes(items), meta));
            }
        };
        // One pass over the text, borrowing each object from it: no copy and no allocation per object.
        let page = match serde_json::from_str::<PageText<'_>>(&text) {
            Ok(page) => page,
            Err(e) => return Err((e, text.into_bytes())),
        };
        let base = text.as_ptr() as usize;
        let spans = page
            .value
            .iter()
            .map(|raw| {
                let at = raw.get().as_ptr() as usize - base;
                at..at + raw.get().len()
            })
            .collect();
        let meta = PageMeta { next_link: page.next_link, warnings: page.warnings, errors: page.errors };
        Ok((RawPage { text, spans, spare: None }, meta))
    }

    fn count(&self) -> usize {
        self.len()
    }

    fn recycle_into(&mut self, spare: &Arc<Spare>) {
        self.spare = Some(spare.clone());
    }
}

/// What a page says besides its objects.
#[derive(Default)]
struct PageMeta {
    next_link: Option<String>,
    warnings: Vec<serde_json::Value>,
    errors: Vec<serde_json::Value>,
}

/// The item streams' state: the current page's raw objects, and the pages.
struct Paging<T> {
    pager: Pager<Vec<Box<RawValue>>>,
    items: std::vec::IntoIter<Box<RawValue>>,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + 'static> Paging<T> {
    async fn next_item(&mut self) -> Option<Result<T, Error>> {
        loop {
            if let Some(raw) = self.items.next() {
                let item = item_from_raw::<T>(raw).map_err(|e| Error::Protocol {
                    cmdlet: self.pager.cmdlet.clone(),
                    message: format!("an output object does not have the expected shape: {e}"),
                });
                if item.is_err() {
                    self.items = Vec::new().into_iter();
                    self.pager.stop();
                }
                return Some(item);
            }
            match self.pager.next_page().await? {
                Ok(items) => self.items = items.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The paging state: where the next page is, and (with prefetch) its fetch under way.
struct Pager<I> {
    client: Arc<Inner>,
    cmdlet: String,
    body: Result<Arc<[u8]>, Error>,
    next: Option<Url>,
    pending: Option<Pending>,
    _items: std::marker::PhantomData<fn() -> I>,
    pages: u32,
    warned: HashSet<String>,
}

impl<I: PageItems> Pager<I> {
    fn new(client: &Arc<Inner>, cmdlet: &str, params: &Parameters) -> Pager<I> {
        let body = serde_json::to_vec(&serde_json::json!({
            "CmdletInput": { "CmdletName": cmdlet, "Parameters": params }
        }));
        Pager {
            client: client.clone(),
            cmdlet: cmdlet.to_string(),
            body: body.map(Arc::from).map_err(|e| Error::Parameters { message: e.to_string() }),
            next: Some(client.invoke_url.clone()),
            pending: None,
            pages: 0,
            warned: HashSet::new(),
            _items: std::marker::PhantomData,
        }
    }

    /// The next page's objects; `None` after the last page or after an error.
    async fn next_page(&mut self) -> Option<Result<I, Error>> {
        let (url, started, fetched) = match self.pending.take() {
            Some(pending) => {
                let fetched = pending.handle.await.unwrap_or_else(|e| {
                    Err(Error::Protocol {
                        cmdlet: self.cmdlet.clone(),
                        message: format!("the page fetch stopped: {e}"),
                    })
                });
                (pending.url, pending.started, fetched)
            }
            None => {
                let url = self.next.take()?;
                let body = match &self.body {
                    Ok(b) => b.clone(),
                    Err(e) => {
                        let message = e.to_string();
                        self.stop();
                        return Some(Err(Error::Parameters { message }));
                    }
                };
                let started = Instant::now();
                let fetched = self.client.fetch_page(&self.cmdlet, &url, &body).await;
                (url, started, fetched)
            }
        };
        let body = match fetched {
            Ok(body) => body,
            Err(e) => {
                self.stop();
                return Some(Err(e));
            }
        };
        // With prefetch, ask for the next page before parsing this one, so the service prepares it while we
        // parse (on another core). The link is checked again below; a different one cancels this request.
        if self.client.prefetch
            && let Some(next) = next_link_hint(&body)
                .and_then(|link| url.join(&link).ok())
                .filter(|next| next.origin() == self.client.invoke_url.origin())
        {
            self.start_fetch(next);
        }
        match parse_page::<I>(&self.cmdlet, body).and_then(|(items, meta)| self.accept(&url, meta).map(|()| items)) {
            Ok(mut items) => {
                items.recycle_into(&self.client.spare);
                self.pages += 1;
                self.client.emit(&Event::Page {
                    cmdlet: &self.cmdlet,
                    number: self.pages,
                    items: items.count(),
                    elapsed: started.elapsed(),
                });
                let next = self.next.take();
                if self.pending.as_ref().map(|p| &p.url) != next.as_ref() {
                    if let Some(pending) = self.pending.take() {
                        pending.handle.abort();
                    }
                    self.next = next;
                    self.prefetch_next();
                }
                Some(Ok(items))
            }
            Err(e) => {
                self.stop();
                Some(Err(e))
            }
        }
    }

    /// Take a page in: report its warnings, check its next link.
    fn accept(&mut self, url: &Url, page: PageMeta) -> Result<(), Error> {
        for w in page.warnings.iter().map(text_of) {
            if self.warned.insert(w.clone()) {
                self.client.emit(&Event::Warning { cmdlet: &self.cmdlet, message: &w });
            }
        }
        for e in page.errors.iter().map(text_of) {
            self.client.emit(&Event::CmdletError { cmdlet: &self.cmdlet, message: &e });
        }
        if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
            let next = url.join(&link).map_err(|e| Error::Protocol {
                cmdlet: self.cmdlet.clone(),
                message: format!("@odata.nextLink `{link}` is not a URL: {e}"),
            })?;
            // The bearer token goes wherever the link points: only ever to the host we were configured with.
            if next.origin() != self.client.invoke_url.origin() {
                return Err(Error::Protocol {
                    cmdlet: self.cmdlet.clone(),
                    message: format!(
                        "@odata.nextLink points to another host ({}), not following it with our token",
                        next.origin().ascii_serialization()
                    ),
                });
            }
            self.next = Some(next);
        }
        Ok(())
    }

    /// With prefetch on, start fetching the next page now, on the runtime, while the caller takes this one.
    fn prefetch_next(&mut self) {
        if !self.client.prefetch {
            return;
        }
        if let Some(url) = self.next.take() {
            self.start_fetch(url);
        }
    }

    /// Fetch `url` in the background (with prefetch on; needs a tokio runtime, else the link waits in `next`).
    fn start_fetch(&mut self, url: Url) {
        let (Ok(body), Ok(runtime)) = (&self.body, tokio::runtime::Handle::try_current()) else {
            self.next = Some(url);
            return;
        };
        let (client, cmdlet, body, target) = (self.client.clone(), self.cmdlet.clone(), body.clone(), url.clone());
        let handle = runtime.spawn(async move { client.fetch_page(&cmdlet, &target, &body).await });
        self.pending = Some(Pending { url, started: Instant::now(), handle });
    }
}

impl<I> Pager<I> {
    fn stop(&mut self) {
        self.next = None;
        if let Some(pending) = self.pending.take() {
            pending.handle.abort();
        }
    }
}

impl<I> Drop for Pager<I> {
    fn drop(&mut self) {
        // A stream dropped early must not leave a request running in the background.
        if let Some(pending) = self.pending.take() {
            pending.handle.abort();
        }
    }
}

/// A prefetched page on its way.
struct Pending {
    url: Url,
    started: Instant,
    handle: tokio::task::JoinHandle<Result<Vec<u8>, Error>>,
}

/// `T` from one item's JSON; a caller asking for the raw JSON gets the box as is (no second parse or copy).
fn item_from_raw<T: DeserializeOwned + 'static>(raw: Box<RawValue>) -> serde_json::Result<T> {
    let any: Box<dyn std::any::Any> = Box::new(raw);
    match any.downcast::<T>() {
        Ok(item) => Ok(*item),
        Err(any) => match any.downcast::<Box<RawValue>>() {
            Ok(raw) => serde_json::from_str(raw.get()),
            Err(_) => unreachable!("the box holds a Box<RawValue>"),
        },
    }
}

fn text_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A page's body with its objects owned one by one.
#[derive(serde::Deserialize, Default)]
struct Page {
    #[serde(default)]
    value: Vec<Box<RawValue>>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@adminapi.warnings", default, deserialize_with = "null_as_empty")]
    warnings: Vec<serde_json::Value>,
    #[serde(rename = "@adminapi.errors", default, deserialize_with = "null_as_empty")]
    errors: Vec<serde_json::Value>,
}

/// A page's body with its objects borrowed from the text.
#[derive(serde::Deserialize)]
struct PageText<'a> {
    #[serde(borrow, default)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@adminapi.warnings", default, deserialize_with = "null_as_empty")]
    warnings: Vec<serde_json::Value>,
    #[serde(rename = "@adminapi.errors", default, deserialize_with = "null_as_empty")]
    errors: Vec<serde_json::Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<serde_json::Value>, D::Error> {
    use serde::Deserialize as _;
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items,
        Some(other) => vec![other],
    })
}

/// One HTTP answer, body read.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    client_request_id: String,
    /// [`token_digest`] of the token the request carried.
    token_digest: u64,
}

impl Inner {
    fn emit(&self, event: &Event<'_>) {
        if let Some(handler) = &self.events {
            handler(event);
        }
    }

    /// POST the body to `url` with retries, renewing the token once if the service rejects it.
    /// The page's body (empty for a 204), to be parsed with [`parse_page`].
    async fn fetch_page(&self, cmdlet: &str, url: &Url, body: &Arc<[u8]>) -> Result<Vec<u8>, Error> {
        let write = !crate::is_read_only(cmdlet);
        // Whether the token was refused once already, and whether the token source then gave a new one.
        let mut refused: Option<bool> = None;
        loop {
            let attempts = AtomicU32::new(0);
            let outcome = cba_http::with_retry(
                &self.retry,
                |attempt| {
                    attempts.store(attempt, Ordering::Relaxed);
                    self.send(cmdlet, url, body.clone())
                },
                |outcome| classify(outcome, write),
                |e| {
                    self.emit(&Event::Retry { cmdlet, attempt: e.attempt, wait: e.wait, reason: &e.reason });
                },
            )
            .await;
            let outcome = match outcome {
                Err(Error::Transport { source, .. }) if write && !source.is_connect() => {
                    let reason = if source.is_timeout() {
                        "no answer came before the timeout"
                    } else {
                        "the connection failed before the whole answer was read"
                    };
                    return Err(outcome_unknown(cmdlet, reason.to_string(), None, String::new(), Some(source)));
                }
                outcome => outcome?,
            };
            let status = outcome.status;
            if status.is_success() {
                return Ok(if status == StatusCode::NO_CONTENT { Vec::new() } else { outcome.body });
            }
            let error = ErrorBody::parse(&outcome.body);
            if write && cba_http::is_transient_status(status) && !refused_unrun(status, &outcome.headers) {
                let answered = format!("Exchange answered HTTP {}", status.as_u16());
                let reason = match &error {
                    Some(e) => format!("{answered} {} ({:?})", e.code, e.summary()),
                    None if outcome.body.iter().all(u8::is_ascii_whitespace) => answered,
                    None => format!("{answered} ({})", snippet(&outcome.body)),
                };
                return Err(outcome_unknown(cmdlet, reason, Some(status.as_u16()), outcome.client_request_id, None));
            }
            let refusal = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
            // A refused token may be expired, or may predate a change (a role restored: a cached token is
            // stale). Drop it and send the request once more with a new one. For a write too: a 401/403 is the
            // service refusing the request before running it, so the one resend cannot make a change twice.
            if refusal && refused.is_none() {
                tracing::debug!(cmdlet, status = status.as_u16(), "token refused: renewing it and retrying once");
                self.tokens.invalidate();
                let next = self.tokens.token().await.map_err(|source| Error::Token { source })?;
                let renewable = token_digest(&next) != outcome.token_digest;
                refused = Some(renewable);
                if renewable {
                    self.emit(&Event::TokenRenewed { cmdlet });
                    continue;
                }
                // The same token again (a fixed one): sending it again would be refused the same way.
            }
            if refusal && let Some(e) = permission_error(cmdlet, error.as_ref()) {
                return Err(e);
            }
            if status == StatusCode::UNAUTHORIZED {
                let detail = error
                    .map(|e| if e.message.is_empty() { e.code } else { e.message })
                    .or_else(|| www_authenticate_error(&outcome.headers));
                let renewed = refused.unwrap_or(false);
                return Err(Error::Unauthorized { cmdlet: cmdlet.to_string(), detail, renewed });
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                return Err(Error::Throttled {
                    cmdlet: cmdlet.to_string(),
                    attempts: attempts.load(Ordering::Relaxed),
                    retry_after: cba_http::retry_after(&outcome.headers),
                });
            }
            return Err(match error {
                Some(e) => Error::Cmdlet {
                    cmdlet: cmdlet.to_string(),
                    status: status.as_u16(),
                    code: e.code,
                    message: e.message,
                    details: e.details,
                    client_request_id: outcome.client_request_id,
                },
                None => {
                    Error::Status { cmdlet: cmdlet.to_string(), status: status.as_u16(), body: snippet(&outcome.body) }
                }
            });
        }
    }

    /// One attempt: a fresh token, the request, the whole body.
    async fn send(&self, cmdlet: &str, url: &Url, body: Arc<[u8]>) -> Result<Answer, Error> {
        let token = self.tokens.token().await.map_err(|source| Error::Token { source })?;
        let token_digest = token_digest(&token);
        let client_request_id = cba_http::client_request_id();
        let started = Instant::now();
        let transport = |source| Error::Transport { url: url.to_string(), source };
        // A refused certificate is found before anything is sent (reqwest does not call it a connect error).
        let connect = |source: reqwest::Error| match cba_http::tls_failure(&source) {
            Some(failure) => Error::Tls { url: url.to_string(), failure },
            None => transport(source),
        };
        let mut response = self
            .http
            .post(url.clone())
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("X-CmdletName", cmdlet)
            .header("Prefer", format!("odata.maxpagesize={}", self.page_size))
            .header("X-AnchorMailbox", self.anchor.clone())
            .header("X-ResponseFormat", "json")
            .header("client-request-id", &client_request_id)
            .body(body.to_vec())
            .send()
            .await
            .map_err(connect)?;
        let status = response.status();
        let headers = response.headers().clone();
        // Chunk by chunk into one buffer of the announced size (the spare one when a page was given back): each
        // chunk is let go at once, so hyper reuses its read buffer, and a reused page buffer is not faulted in anew.
        let mut body = self.spare.take(response.content_length().map_or(0, |n| n.min(MAX_RESERVE) as usize));
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(
            cmdlet,
            url = %url,
            status = status.as_u16(),
            bytes = body.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            client_request_id = %client_request_id,
            "InvokeCommand"
        );
        Ok(Answer { status, headers, body, client_request_id, token_digest })
    }
}

/// A digest of a bearer token, to tell whether the token source gave a new one without keeping the token.
fn token_digest(token: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut hasher);
    hasher.finish()
}

/// The most room set aside for a body from its Content-Length (a larger one grows as it arrives).
const MAX_RESERVE: u64 = 64 << 20;

/// Whether to send the request again. A read (see [`is_read_only`](crate::is_read_only)) is retried after any
/// transient failure. A write only when the failure shows it did not run: a 429 or a 503 with `Retry-After`
/// (the service refusing work before doing it), or a failed connect (nothing was sent); anything else may have
/// run, and `fetch_page` reports it as [`Error::OutcomeUnknown`].
fn classify(outcome: &Result<Answer, Error>, write: bool) -> Verdict {
    match outcome {
        Ok(a) if cba_http::is_transient_status(a.status) && (!write || refused_unrun(a.status, &a.headers)) => {
            Verdict::Retry { after: cba_http::retry_after(&a.headers), reason: format!("HTTP {}", a.status.as_u16()) }
        }
        Err(Error::Transport { source, .. })
            if if write { source.is_connect() } else { cba_http::is_transient_error(source) } =>
        {
            Verdict::Retry { after: None, reason: source.to_string() }
        }
        _ => Verdict::Done,
    }
}

/// An answer by which the service says it did not run the cmdlet: throttled (429), or unavailable with a time
/// to come back (503 + `Retry-After`, what Exchange's front end sends when it sheds load).
fn refused_unrun(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::SERVICE_UNAVAILABLE && headers.contains_key(reqwest::header::RETRY_AFTER))
}

fn outcome_unknown(
    cmdlet: &str,
    reason: String,
    status: Option<u16>,
    client_request_id: String,
    source: Option<reqwest::Error>,
) -> Error {
    Error::OutcomeUnknown {
        cmdlet: cmdlet.to_string(),
        reason,
        status,
        check_with: crate::matching_get_cmdlet(cmdlet),
        client_request_id,
        source,
    }
}

fn parse_page<I: PageItems>(cmdlet: &str, body: Vec<u8>) -> Result<(I, PageMeta), Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    I::parse(body).map_err(|(e, body)| Error::Protocol {
        cmdlet: cmdlet.to_string(),
        message: format!("the response is not an OData collection ({e}): {}", snippet(&body)),
    })
}

/// `@odata.nextLink` of a page, found without parsing the rest: the top-level members are walked, and other
/// values skipped by their brackets and quotes (the service puts the link before `value`, so this usually reads
/// a few hundred bytes). `None` when there is none or the text is not shaped as expected; the full parse decides.
fn next_link_hint(body: &[u8]) -> Option<String> {
    let ws = |mut i: usize| {
        while body.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let mut i = ws(0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    loop {
        i = ws(i + 1);
        let key_end = string_end(body, i)?;
        let key = &body[i..key_end];
        i = ws(key_end);
        if body.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        if key == b"\"@odata.nextLink\"" {
            let end = string_end(body, i)?;
            return serde_json::from_slice::<String>(&body[i..end]).ok().filter(|link| !link.is_empty());
        }
        i = ws(value_end(body, i)?);
        if body.get(i) != Some(&b',') {
            return None;
        }
    }
}

/// Just past the string starting at `at` (a `"`).
fn string_end(body: &[u8], at: usize) -> Option<usize> {
    if body.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        match body.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Just past the value starting at `at`: a string, an object or array (by depth, strings skipped), or a scalar.
fn value_end(body: &[u8], at: usize) -> Option<usize> {
    match body.get(at)? {
        b'"' => string_end(body, at),
        b'{' | b'[' => {
            let (mut depth, mut i) = (0usize, at);
            loop {
                match body.get(i)? {
                    b'"' => {
                        i = string_end(body, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = body[at..].iter().position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace());
            Some(at + len.unwrap_or(body.len() - at))
        }
    }
}

/// The service's `{"error":{"code","message","details":[{"message":"code|type|text"}]}}`.
struct ErrorBody {
    code: String,
    message: String,
    details: Vec<CmdletErrorDetail>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Option<ErrorBody> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let e = v.get("error")?;
        let text = |v: Option<&serde_json::Value>| v.and_then(|s| s.as_str()).unwrap_or_default().to_string();
        let details = e
            .get("details")
            .and_then(|d| d.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|d| d.get("message").and_then(|m| m.as_str()))
                    .map(CmdletErrorDetail::parse)
                    .collect()
            })
            .unwrap_or_default();
        Some(ErrorBody { code: text(e.get("code")), message: text(e.get("message")), details })
    }

    /// The detail texts (what PowerShell would print), else the message.
    fn summary(&self) -> String {
        let texts: Vec<&str> = self.details.iter().map(|d| d.text.as_str()).filter(|t| !t.is_empty()).collect();
        if texts.is_empty() { self.message.clone() } else { texts.join("; ") }
    }

    fn texts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.message.as_str()).chain(self.details.iter().map(|d| d.text.as_str()))
    }
}

fn permission_error(cmdlet: &str, error: Option<&ErrorBody>) -> Option<Error> {
    let error = error?;
    for text in error.texts() {
        let lower = text.to_ascii_lowercase();
        if lower.contains("not allowed to call") {
            return Some(Error::NotAllowed {
                cmdlet: cmdlet.to_string(),
                message: text.to_string(),
                hint: NOT_ALLOWED_HINT,
            });
        }
        if lower.contains("supported in this scenario") {
            let app_id = text
                .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
                .find(|w| w.len() == 36 && w.matches('-').count() == 4)
                .map(str::to_string);
            return Some(Error::UnsupportedRole {
                cmdlet: cmdlet.to_string(),
                message: text.to_string(),
                app_id,
                hint: UNSUPPORTED_ROLE_HINT,
            });
        }
    }
    None
}

/// `error="invalid_token", error_description="…"` from `WWW-Authenticate`.
fn www_authenticate_error(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(reqwest::header::WWW_AUTHENTICATE)?.to_str().ok()?;
    let find = |key: &str| {
        let at = value.find(&format!("{key}=\""))? + key.len() + 2;
        let end = value[at..].find('"')?;
        Some(value[at..at + end].to_string())
    };
    match (find("error"), find("error_description")) {
        (Some(e), Some(d)) => Some(format!("{e}: {d}")),
        (Some(e), None) => Some(e),
        (None, d) => d,
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_messages() {
        let body = br#"{"error":{"code":"Unauthorized","message":"User is not allowed to call Get-Mailbox"}}"#;
        let e = permission_error("Get-Mailbox", ErrorBody::parse(body).as_ref()).unwrap();
        assert!(matches!(e, Error::NotAllowed { .. }), "{e:?}");
        let body = br#"{"error":{"code":"Unauthorized","message":"The role assigned to application 631a96bc-a705-4eda-9f99-fdaf9f54f6a2 isn't supported in this scenario."}}"#;
        match permission_error("Get-Mailbox", ErrorBody::parse(body).as_ref()).unwrap() {
            Error::UnsupportedRole { app_id, .. } => {
                assert_eq!(app_id.as_deref(), Some("631a96bc-a705-4eda-9f99-fdaf9f54f6a2"))
            }
            other => panic!("{other:?}"),
        }
        let body = br#"{"error":{"code":"Unauthorized","message":"Token expired"}}"#;
        assert!(permission_error("Get-Mailbox", ErrorBody::parse(body).as_ref()).is_none());
    }

    #[test]
    fn www_authenticate() {
        let mut h = HeaderMap::new();
        h.insert(
            "www-authenticate",
            r#"Bearer client_id="00000002-0000-0ff1-ce00-000000000000", error="invalid_token", error_description="The token has expired""#.parse().unwrap(),
        );
        assert_eq!(www_authenticate_error(&h).as_deref(), Some("invalid_token: The token has expired"));
    }

    #[test]
    fn next_link_hints() {
        let hint = |body: &str| next_link_hint(body.as_bytes());
        assert_eq!(
            hint(r#"{"@odata.nextLink":"http://h/x?$skiptoken=1","value":[]}"#).as_deref(),
            Some("http://h/x?$skiptoken=1")
        );
        let after = r#" { "@odata.context" : "c", "n": -1.5e3, "t": true, "o": {"a": ["}", "\"]"]},
            "value" : [ {"k": "v\"{["}, [1, {}] ] , "@odata.nextLink" : "http:\/\/h\/y" } "#;
        assert_eq!(hint(after).as_deref(), Some("http://h/y"));
        for none in
            ["", "[]", "{}", r#"{"value":[]}"#, r#"{"@odata.nextLink":""}"#, r#"{"value":[1,2"#, "{\"a\":1 \"b\""]
        {
            assert_eq!(hint(none), None, "{none}");
        }
    }

    #[test]
    fn raw_pages_point_into_the_text() {
        let body = br#"{"@odata.nextLink":"n","value":[{"a":1} , "s",
            {"b": [2, 3]}]}"#;
        let (page, meta) = <RawPage as PageItems>::parse(body.to_vec()).unwrap();
        assert_eq!(page.iter().collect::<Vec<_>>(), [r#"{"a":1}"#, r#""s""#, r#"{"b": [2, 3]}"#]);
        assert_eq!(meta.next_link.as_deref(), Some("n"));
        let mut latin1 = br#"{"value":[{"a":"x"}],"other":"#.to_vec();
        latin1.extend_from_slice(b"\"\xe9\"}");
        // Accepted as the item streams accept it (an ignored member is not checked), the objects kept.
        let (page, _) = <RawPage as PageItems>::parse(latin1).unwrap();
        assert_eq!(page.iter().collect::<Vec<_>>(), [r#"{"a":"x"}"#]);
    }

    #[test]
    fn builder_checks() {
        let tokens: Arc<dyn TokenSource> = Arc::new(cba_http::StaticToken::new("t"));
        let ok =
            ExoClient::builder().tenant_id("contoso.onmicrosoft.com").token_source(tokens.clone()).build().unwrap();
        assert_eq!(
            ok.invoke_url(),
            "https://outlook.office365.com/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand"
        );
        let sim = ExoClient::builder()
            .base_url("http://127.0.0.1:9/exo")
            .tenant_id("0c9b0b3c-0000-4000-8000-000000000001")
            .token_source(tokens.clone())
            .build()
            .unwrap();
        assert_eq!(
            sim.invoke_url(),
            "http://127.0.0.1:9/exo/adminapi/beta/0c9b0b3c-0000-4000-8000-000000000001/InvokeCommand"
        );
        for bad in ["../x", "a/b", "a b", ""] {
            assert!(ExoClient::builder().tenant_id(bad).token_source(tokens.clone()).build().is_err(), "{bad}");
        }
        assert!(
            ExoClient::builder()
                .base_url("http://example.com")
                .tenant_id("t")
                .token_source(tokens.clone())
                .build()
                .is_err()
        );
        assert!(ExoClient::builder().tenant_id("t").build().is_err(), "no token source");
        assert!(ExoClient::builder().tenant_id("t").token_source(tokens).page_size(0).build().is_err());
    }
}
