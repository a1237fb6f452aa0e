//! Unit tests of the HTTP layer: rate limits told from refusals, provider messages, paths.

use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn rate_limits_are_told_from_permission_refusals() {
    let now = 1_000;
    let primary = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1030")]);
    assert_eq!(
        rate_limit(403, &primary, b"{\"message\":\"API rate limit exceeded\"}", now),
        Some((Duration::from_secs(30), "primary"))
    );
    let secondary = br#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes"}"#;
    assert_eq!(
        rate_limit(403, &HeaderMap::new(), secondary, now),
        Some((SECONDARY_WAIT, "secondary"))
    );
    let retry = headers(&[("retry-after", "7")]);
    assert_eq!(
        rate_limit(429, &retry, b"", now),
        Some((Duration::from_secs(7), "secondary"))
    );
    let gitlab = headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "1002")]);
    assert_eq!(
        rate_limit(429, &gitlab, b"Retry later", now),
        Some((Duration::from_secs(2), "primary"))
    );
    let forbidden = br#"{"message":"Resource not accessible by personal access token"}"#;
    assert_eq!(
        rate_limit(403, &headers(&[("x-ratelimit-remaining", "4999")]), forbidden, now),
        None
    );
    assert_eq!(rate_limit(404, &HeaderMap::new(), b"", now), None);
}

#[test]
fn provider_messages_are_short_and_plain() {
    let github = br#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"No commits between main and rightsizer/prod"}],"documentation_url":"https://docs.github.com"}"#;
    assert_eq!(
        provider_message(github),
        "Validation Failed; No commits between main and rightsizer/prod"
    );
    assert_eq!(
        provider_message(br#"{"message":"401 Unauthorized"}"#),
        "401 Unauthorized"
    );
    assert_eq!(
        provider_message(
            br#"{"error":"insufficient_scope","error_description":"The request requires higher privileges"}"#
        ),
        "insufficient_scope; The request requires higher privileges"
    );
    assert_eq!(provider_message(b""), "(no message)");
    assert_eq!(provider_message("x\n".repeat(500).as_bytes()).len(), 400);
}

#[test]
fn segments_and_links() {
    assert_eq!(segment("group/sub/project"), "group%2Fsub%2Fproject");
    assert_eq!(segment("rightsizer/prod-1.2"), "rightsizer%2Fprod-1.2");
    let h = headers(&[(
        "link",
        r#"<https://api.github.com/repositories/1/pulls?page=2>; rel="next", <https://api.github.com/repositories/1/pulls?page=5>; rel="last""#,
    )]);
    assert_eq!(
        next_link(&h).as_deref(),
        Some("https://api.github.com/repositories/1/pulls?page=2")
    );
    assert_eq!(next_link(&headers(&[("link", r#"<x>; rel="prev""#)])), None);
}
