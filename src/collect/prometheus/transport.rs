//! The HTTP-level pieces of the Prometheus client: the retry policy (exponential backoff,
//! `Retry-After`), the outcome of one failed attempt, the blocking reader that feeds the
//! streaming parser from the async body, the string-length guard on the body bytes, and the
//! basic-auth header.

use std::io::{self, Read};
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::sync::mpsc;

use crate::collect::Error;
use crate::collect::promparse::Over;

/// The wait before retry `attempt`: the server's `Retry-After` capped at `max_retry_after`
/// (a longer wait is better reported than slept through), else exponential from `base`.
pub(super) fn backoff(
    base: Duration,
    attempt: u32,
    retry_after: Option<Duration>,
    max_retry_after: Duration,
) -> Duration {
    let exp = base * (1u32 << (attempt.saturating_sub(1)).min(4));
    match retry_after {
        Some(r) => r.min(max_retry_after),
        None => exp,
    }
}

/// Why the parser of an answer gave up.
pub(super) enum Broken {
    /// Not what was expected (torn, garbled): worth another try.
    Garbled(String),
    /// Over a cap: another try would answer the same.
    Over(Over),
}

/// `Retry-After` in seconds (the HTTP-date form is rare from Prometheus proxies: ignored).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A failed attempt, and whether another could succeed.
pub(super) struct Failure {
    pub(super) error: Error,
    pub(super) retryable: bool,
    pub(super) retry_after: Option<Duration>,
    pub(super) timed_out: bool,
}

impl Failure {
    pub(super) fn fatal(error: Error) -> Self {
        Failure {
            error,
            retryable: false,
            retry_after: None,
            timed_out: false,
        }
    }

    pub(super) fn transient(error: Error) -> Self {
        Failure {
            retryable: true,
            ..Failure::fatal(error)
        }
    }
}

/// The blocking side of the body stream: reads the chunks the async side sends.
pub(super) struct ChannelReader<B> {
    pub(super) rx: mpsc::Receiver<io::Result<B>>,
    pub(super) cur: Option<B>,
    pub(super) pos: usize,
}

impl<B: AsRef<[u8]>> Read for ChannelReader<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(cur) = &self.cur {
                let rest = &cur.as_ref()[self.pos..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.cur = Some(chunk);
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
    }
}

pub(super) fn basic_auth_value(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reads_retry_after_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(60);
        let got: Vec<u128> = (1..=7).map(|a| backoff(base, a, None, max).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1600, 1600, 1600]);
        assert_eq!(
            backoff(base, 1, Some(Duration::from_secs(2)), max),
            Duration::from_secs(2)
        );
        assert_eq!(backoff(base, 1, Some(Duration::from_secs(3600)), max), max);
    }

    #[test]
    fn encodes_basic_auth() {
        assert_eq!(
            basic_auth_value("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_auth_value("a", "b"), "Basic YTpi");
    }
}
