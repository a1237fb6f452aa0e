//! Bounded retries of the Kubernetes writes (annotations, `--apply`, the report ConfigMap).
//! The client's own retry layer is off (`collect::cluster`: it honoured any `Retry-After` and
//! retried silently), so without this a 429 from API priority and fairness or a 5xx during an
//! API server restart would fail the workload at once. Each retry is logged at warn with its
//! attempt; what is not transient (403, 404, 409, 422) is returned at once.

use std::future::Future;
use std::time::Duration;

/// Attempts of one write: 0.5 + 1 + 2 s of waiting rides out a leader change or a restart.
pub const ATTEMPTS: u32 = 4;
const FIRST_DELAY: Duration = Duration::from_millis(500);

/// Whether an answer is worth another try: throttled (429) or the server unavailable (5xx
/// but 501, which will not change).
pub fn transient(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 429 || (500..600).contains(&s.code) && s.code != 501)
}

/// Runs `call` up to [`ATTEMPTS`] times while it fails transiently; `what` names the write in
/// the log.
pub async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = FIRST_DELAY;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                tracing::warn!(attempt, of = ATTEMPTS, error = %e, "{what}: transient failure, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}
