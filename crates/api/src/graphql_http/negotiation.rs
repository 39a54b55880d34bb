//! The media types of GraphQL over HTTP: what a client accepts, and what it sends.

use axum::http::{HeaderMap, header};

/// The two media types an answer can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/graphql-response+json`: a request error is a `400` without
    /// `data`, so that anything between client and server can tell.
    GraphqlResponse,
    /// `application/json`, the legacy type: every answer to a well-formed request
    /// is a `200`.
    Json,
}

impl MediaType {
    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            MediaType::Json => "application/json; charset=utf-8",
        }
    }
}

/// The answer's media type by the request's `Accept`: the one with the higher
/// quality, then the one named more precisely; when a wildcard is all that
/// matches both, `application/json`, as the spec asks for `*/*` and for no
/// `Accept` at all. `None` when the client accepts neither.
pub fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = accept(headers) else { return Some(MediaType::Json) };
    let graphql = preference(&accept, "application", "graphql-response+json");
    let json = preference(&accept, "application", "json");
    match (graphql, json) {
        (None, None) => None,
        (Some(_), None) => Some(MediaType::GraphqlResponse),
        (None, Some(_)) => Some(MediaType::Json),
        (Some(graphql), Some(json)) => {
            if graphql > json || (graphql == json && graphql.1 == Specificity::Exact) {
                Some(MediaType::GraphqlResponse)
            } else {
                Some(MediaType::Json)
            }
        }
    }
}

/// Whether the client asks for a page: `text/html` named with a quality above 0.
pub fn wants_html(headers: &HeaderMap) -> bool {
    accept(headers).is_some_and(|accept| {
        ranges(&accept).any(|range| range.kind == "text" && range.subtype == "html" && range.quality > 0)
    })
}

/// Whether a POST body is declared JSON: `application/json`, in UTF-8 if a charset
/// is named. `Err` says what is wrong.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err("a POST to /graphql needs `Content-Type: application/json`".to_owned());
    };
    let value = value.to_str().map_err(|_| "the Content-Type header is not text".to_owned())?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(format!("the body must be `application/json`, not `{essence}`"));
    }
    for parameter in parts {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let value = value.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset") && !value.eq_ignore_ascii_case("utf-8") {
            return Err(format!("the body must be UTF-8, not {value}"));
        }
    }
    Ok(())
}

fn accept(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers.get_all(header::ACCEPT).iter().filter_map(|value| value.to_str().ok()).collect();
    let joined = values.join(",");
    (!joined.trim().is_empty()).then_some(joined)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Any,
    Type,
    Exact,
}

/// One media range of an `Accept` header, its quality in thousandths.
struct Range<'a> {
    kind: &'a str,
    subtype: &'a str,
    quality: u16,
}

/// At most this many ranges of an `Accept` header are read.
const MAX_RANGES: usize = 32;

fn ranges(accept: &str) -> impl Iterator<Item = Range<'_>> {
    accept.split(',').take(MAX_RANGES).filter_map(|range| {
        let mut parts = range.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        let quality = parts
            .filter_map(|parameter| parameter.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, value)| parse_quality(value.trim()));
        Some(Range { kind: kind.trim(), subtype: subtype.trim(), quality })
    })
}

/// `q` in thousandths; anything unreadable counts as 0.
fn parse_quality(value: &str) -> u16 {
    match value.parse::<f32>() {
        Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u16,
        _ => 0,
    }
}

/// The quality and precision of the range that best names `kind/subtype`, or
/// `None` when none names it or the best one refuses it (`q=0`).
fn preference(accept: &str, kind: &str, subtype: &str) -> Option<(u16, Specificity)> {
    let best = ranges(accept)
        .filter_map(|range| {
            let specificity = match (range.kind, range.subtype) {
                ("*", "*") => Specificity::Any,
                (k, "*") if k.eq_ignore_ascii_case(kind) => Specificity::Type,
                (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => Specificity::Exact,
                _ => return None,
            };
            Some((specificity, range.quality))
        })
        .max_by_key(|(specificity, _)| *specificity)?;
    (best.1 > 0).then_some((best.1, best.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_accept(accept: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        }
        headers
    }

    #[test]
    fn the_answer_type_follows_the_accept_header() {
        let cases = [
            (None, Some(MediaType::Json)),
            (Some("*/*"), Some(MediaType::Json)),
            (Some("application/*"), Some(MediaType::Json)),
            (Some("application/json"), Some(MediaType::Json)),
            (Some("application/graphql-response+json"), Some(MediaType::GraphqlResponse)),
            (Some("application/graphql-response+json, application/json"), Some(MediaType::GraphqlResponse)),
            (
                Some("application/graphql-response+json;charset=utf-8, application/json;q=0.9"),
                Some(MediaType::GraphqlResponse),
            ),
            (Some("application/json, application/graphql-response+json;q=0.5"), Some(MediaType::Json)),
            (Some("application/graphql-response+json, */*;q=0.8"), Some(MediaType::GraphqlResponse)),
            (Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), Some(MediaType::Json)),
            (Some("application/json;q=0, application/graphql-response+json"), Some(MediaType::GraphqlResponse)),
            (Some("text/html"), None),
            (Some("application/json;q=0"), None),
        ];
        for (accept, expected) in cases {
            assert_eq!(negotiate(&with_accept(accept)), expected, "Accept: {accept:?}");
        }
    }

    #[test]
    fn only_a_named_text_html_asks_for_the_page() {
        assert!(wants_html(&with_accept(Some("text/html,application/xhtml+xml,*/*;q=0.8"))));
        assert!(!wants_html(&with_accept(Some("*/*"))));
        assert!(!wants_html(&with_accept(Some("text/html;q=0"))));
        assert!(!wants_html(&with_accept(None)));
    }

    #[test]
    fn a_post_body_must_be_declared_json_in_utf_8() {
        let content_type = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            check_content_type(&headers)
        };
        assert!(content_type("application/json").is_ok());
        assert!(content_type("Application/JSON; charset=UTF-8").is_ok());
        assert!(content_type("application/json; charset=latin1").is_err());
        assert!(content_type("text/plain").is_err());
        assert!(content_type("application/x-www-form-urlencoded").is_err());
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }
}
