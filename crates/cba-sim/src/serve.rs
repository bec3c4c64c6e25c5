//! The sim's HTTP server: hyper on a thread of its own (a 2-worker tokio runtime), so a sim outlives no test
//! runtime and serves while the test's own runtime is busy. Each request is read whole, turned into a
//! `wiremock::Request` (the type every handler takes), answered by [`crate::server::answer`] under the state
//! lock, and only then delayed by the latency knob, outside every lock: requests in flight overlap their delays.
//!
//! Not wiremock's server: it keeps a copy of every request it matched for its expectations, forever (about
//! 12 KiB per request; a `cba sim serve` of a fleet benchmark grew by 15 MiB per run). The routes still are
//! wiremock-shaped (`Request`, the `Respond` impl in server.rs) so handlers stay as they were.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;

use crate::server::Shared;

/// A running server; dropping it stops accepting and closes the connections.
#[derive(Debug)]
pub(crate) struct Server {
    address: SocketAddr,
    _shutdown: watch::Sender<()>,
}

impl Server {
    /// Serve `shared` on `listener` (already bound).
    pub(crate) fn start(listener: std::net::TcpListener, shared: Arc<Shared>) -> std::io::Result<Server> {
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cba-sim")
            .enable_all()
            .build()?;
        std::thread::Builder::new().name("cba-sim-server".into()).spawn(move || {
            runtime.block_on(accept(listener, shared, stop));
            // Connections still open are dropped with the runtime.
            runtime.shutdown_background();
        })?;
        Ok(Server { address, _shutdown: shutdown })
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }
}

async fn accept(listener: std::net::TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let stream = tokio::select! {
            biased;
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: keep serving the connections there are.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, request).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}

async fn respond(shared: &Shared, request: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => return plain(400, "cba-sim: the request body could not be read"),
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(url) = url::Url::parse(&format!("{}{target}", shared.base_url)) else {
        return plain(400, "cba-sim: the request target is not a valid path");
    };
    let request = wiremock::Request { url, method: parts.method, headers: parts.headers, body };
    let (reply, delay) = crate::server::answer(shared, &request);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    reply.into_response()
}

fn plain(status: u16, message: &'static str) -> hyper::Response<Full<Bytes>> {
    crate::http::Reply { status, headers: Vec::new(), body: Some((message.as_bytes().to_vec(), "text/plain")) }
        .into_response()
}
