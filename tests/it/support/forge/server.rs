//! Routing shared by both fakes: parses and records each request, hands it to the provider
//! (`github.rs`, `gitlab.rs`), and turns the reply into an HTTP response. Also the list
//! pagination both providers share the shape of (page/per_page; GitHub `Link`, GitLab `x-*`).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::serve::Fake;
use super::{Provider, Recorded, State, github, gitlab};

impl Fake for State {
    fn answer(&mut self, method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Response {
        let request = Req::new(method, uri, headers, body);
        self.serve(&request).into_response()
    }
}

/// A parsed request.
pub(super) struct Req {
    pub method: Method,
    /// Raw path.
    pub path: String,
    /// Path segments, percent-decoded one by one (so `org%2Frepo` stays one segment).
    pub segments: Vec<String>,
    pub query: String,
    pub params: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    fn new(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Self {
        let path = uri.path().to_string();
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let query = uri.query().unwrap_or("").to_string();
        let params = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        Req {
            method,
            path,
            segments,
            query,
            params,
            headers,
            body,
        }
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.get(key).and_then(|v| v.to_str().ok())
    }

    /// The body as a JSON object (an empty body is `{}`).
    pub fn json(&self) -> Result<Value, String> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.body).map_err(|e| e.to_string())
    }

    pub fn is_write(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD)
    }
}

/// A reply before it becomes a response.
pub(super) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            content_type: "application/json; charset=utf-8",
            body: value.to_string().into_bytes(),
        }
    }

    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            content_type,
            body,
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            content_type: "",
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if !self.content_type.is_empty() {
            headers.insert("content-type", HeaderValue::from_static(self.content_type));
        }
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                headers.append(name, value);
            }
        }
        response
    }
}

impl State {
    fn serve(&mut self, request: &Req) -> Reply {
        let index = self.requests.len();
        self.requests.push(Recorded {
            method: request.method.to_string(),
            path: request.path.clone(),
            query: request.query.clone(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status: 0,
        });
        let reply = match self.provider {
            Provider::GitHub => github::serve(self, request),
            Provider::GitLab => gitlab::serve(self, request),
        };
        self.requests[index].status = reply.status;
        reply
    }

    /// The first injected failure matching this request, used up by one.
    pub(super) fn take_failure(&mut self, request: &Req) -> Option<u16> {
        let method = request.method.as_str();
        let failure = self.failures.iter_mut().find(|f| {
            f.remaining > 0 && (f.method == "*" || f.method == method) && request.path.starts_with(&f.prefix)
        })?;
        failure.remaining -= 1;
        Some(failure.status)
    }

    pub(super) fn take_rate_limit(&mut self) -> Option<super::RateLimit> {
        let entry = self.rate_limits.iter_mut().find(|(_, n)| *n > 0)?;
        entry.1 -= 1;
        Some(entry.0)
    }

    /// Counts a request against the rate-limit window, opening a new window when it ended.
    pub(super) fn count_request(&mut self) {
        let now = super::store::now();
        if now >= self.rate_reset {
            self.rate_reset = now + 3600;
            self.rate_used = 0;
        }
        self.rate_used += 1;
    }

    /// Page size and page number of a list request: `per_page` (default `default`, at most
    /// 100, then the cap set by the test) and `page` (from 1).
    pub(super) fn page_params(&self, request: &Req, default: usize) -> (usize, usize) {
        let per_page = request
            .param("per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(default)
            .min(100);
        let per_page = self.page_size.map_or(per_page, |cap| per_page.min(cap));
        let page = request
            .param("page")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1);
        (per_page, page)
    }

    /// The URL of another page of this list request: the same query with `page` replaced
    /// and `per_page` made explicit.
    pub(super) fn page_url(&self, request: &Req, per_page: usize, page: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &request.params {
            if k != "page" && k != "per_page" {
                query.append_pair(k, v);
            }
        }
        query.append_pair("per_page", &per_page.to_string());
        query.append_pair("page", &page.to_string());
        format!("{}{}?{}", self.base_url(), request.path, query.finish())
    }

    /// An RFC 8288 `Link` header over pages 1..=last (rel prev, next, last, first as
    /// applicable), or None when everything fits on one page.
    pub(super) fn link_header(&self, request: &Req, per_page: usize, page: usize, last: usize) -> Option<String> {
        if last <= 1 && page <= 1 {
            return None;
        }
        let mut links = Vec::new();
        if page > 1 {
            links.push(format!(
                "<{}>; rel=\"prev\"",
                self.page_url(request, per_page, page - 1)
            ));
        }
        if page < last {
            links.push(format!(
                "<{}>; rel=\"next\"",
                self.page_url(request, per_page, page + 1)
            ));
        }
        // GitHub's order: prev, next, last, first.
        if page < last {
            links.push(format!("<{}>; rel=\"last\"", self.page_url(request, per_page, last)));
        }
        if page > 1 {
            links.push(format!("<{}>; rel=\"first\"", self.page_url(request, per_page, 1)));
        }
        Some(links.join(", "))
    }
}

impl State {
    /// GitLab's pagination headers ("REST API": pagination): `x-page`, `x-per-page`,
    /// `x-next-page` and `x-prev-page` (empty when none), `x-total`, `x-total-pages`, and a
    /// `Link` with prev/next when they exist and first/last always.
    pub(super) fn gitlab_pages(
        &self,
        reply: Reply,
        request: &Req,
        per_page: usize,
        page: usize,
        last: usize,
        total: usize,
    ) -> Reply {
        let next = if page < last {
            (page + 1).to_string()
        } else {
            String::new()
        };
        let prev = if page > 1 {
            (page - 1).to_string()
        } else {
            String::new()
        };
        let mut links = Vec::new();
        if page > 1 {
            links.push(format!(
                "<{}>; rel=\"prev\"",
                self.page_url(request, per_page, page - 1)
            ));
        }
        if page < last {
            links.push(format!(
                "<{}>; rel=\"next\"",
                self.page_url(request, per_page, page + 1)
            ));
        }
        links.push(format!("<{}>; rel=\"first\"", self.page_url(request, per_page, 1)));
        links.push(format!("<{}>; rel=\"last\"", self.page_url(request, per_page, last)));
        reply
            .header("x-page", page.to_string())
            .header("x-per-page", per_page.to_string())
            .header("x-next-page", next)
            .header("x-prev-page", prev)
            .header("x-total", total.to_string())
            .header("x-total-pages", last.to_string())
            .header("Link", links.join(", "))
    }
}

/// One page of `items`: the slice and the number of the last page (at least 1).
pub(super) fn page_of<T: Clone>(items: &[T], per_page: usize, page: usize) -> (Vec<T>, usize) {
    let last = items.len().div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page).min(items.len());
    let end = (start + per_page).min(items.len());
    (items[start..end].to_vec(), last)
}
