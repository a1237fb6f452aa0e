//! Serving a fake's axum router on a free 127.0.0.1 port, on the caller's tokio runtime or
//! on a thread with a runtime of its own, until dropped: shared by the fake Kubernetes API
//! (`fake_api/`) and the fake forges (`forge/`), which find it as `super::serve`: a
//! benchmark that includes `fake_api/mod.rs` by its path includes this file beside it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use tokio::sync::oneshot;

/// A fake's state, shared between its handle and the request handlers.
pub type Shared<S> = Arc<Mutex<S>>;

/// The state even when a handler panicked with the lock held (the panic fails the test that
/// caused it; the next request still gets an answer).
pub fn lock<S>(state: &Shared<S>) -> MutexGuard<'_, S> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fake's state answers every request itself (its own routing), under the lock.
pub trait Fake: Send + 'static {
    fn answer(&mut self, method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Response;
}

fn router<S: Fake>(state: Shared<S>) -> Router {
    Router::new().fallback(handle::<S>).with_state(state)
}

async fn handle<S: Fake>(
    Extract(state): Extract<Shared<S>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lock(&state).answer(method, &uri, headers, body)
}

/// A fake being served; dropping it shuts the server down.
pub struct Serving<S> {
    pub state: Shared<S>,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl<S: Fake> Serving<S> {
    /// Binds 127.0.0.1:0 and serves the state `new` makes from the address
    /// (`127.0.0.1:PORT`) on the current tokio runtime. `name` ("fake api") prefixes panics.
    pub async fn start(name: &str, new: impl FnOnce(String) -> S) -> Serving<S> {
        let (listener, addr, state) = listen(name, new).await;
        let app = router(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Serving {
            state,
            addr,
            shutdown: Some(tx),
        }
    }

    /// The same on a thread (named after `name`, "fake-api") with its own runtime, for
    /// callers without one (tests that run the binary, benchmarks). Clients still need a
    /// runtime of their own.
    pub fn start_blocking(name: &'static str, new: impl FnOnce(String) -> S + Send + 'static) -> Serving<S> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (tx, rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.replace(' ', "-"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("{name}: build runtime: {e}"));
                runtime.block_on(async move {
                    let (listener, addr, shared) = listen(name, new).await;
                    let _ = ready_tx.send((addr, shared.clone()));
                    let app = router(shared);
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = rx => {}
                    }
                });
            })
            .unwrap_or_else(|e| panic!("{name}: spawn server thread: {e}"));
        let (addr, state) = ready_rx
            .recv()
            .unwrap_or_else(|_| panic!("{name}: server thread did not start"));
        Serving {
            state,
            addr,
            shutdown: Some(tx),
        }
    }
}

/// Binds 127.0.0.1:0: the listener, its address and the state made from it.
async fn listen<S>(name: &str, new: impl FnOnce(String) -> S) -> (tokio::net::TcpListener, SocketAddr, Shared<S>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{name}: bind 127.0.0.1:0: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{name}: local address: {e}"));
    let state = Arc::new(Mutex::new(new(addr.to_string())));
    (listener, addr, state)
}

impl<S> Drop for Serving<S> {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
