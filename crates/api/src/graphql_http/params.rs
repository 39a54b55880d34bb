//! A GraphQL request's parameters, from a POST's JSON body or a GET's URL.
//!
//! Each parameter has one type: `query`, `operationName` and `documentId` are
//! strings, `variables` and `extensions` maps; each may be `null` or left out.
//! Anything else is a malformed request (`400` whatever the client accepts),
//! and so is a request with neither a document nor a way to find one.

use serde::Deserialize;
use serde_json::{Map, Value};

/// One operation's parameters, as the client sent them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub operation_name: Option<String>,
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
    #[serde(default)]
    pub extensions: Option<Map<String, Value>>,
    #[serde(default)]
    pub document_id: Option<String>,
}

impl Params {
    /// `extensions.persistedQuery`, when there is one.
    pub fn persisted_query(&self) -> Option<&Value> {
        self.extensions.as_ref()?.get("persistedQuery")
    }

    fn check(self) -> Result<Params, String> {
        if self.query.is_none() && self.document_id.is_none() && self.persisted_query().is_none() {
            return Err(
                "the request has no `query` (nor a `documentId` or `extensions.persistedQuery` naming one)".to_owned()
            );
        }
        Ok(self)
    }
}

/// What a body holds: one operation, or a batch of them run one after another.
#[derive(Debug)]
pub enum Batch {
    Single(Params),
    Batch(Vec<Params>),
}

impl Batch {
    pub fn len(&self) -> usize {
        match self {
            Batch::Single(_) => 1,
            Batch::Batch(batch) => batch.len(),
        }
    }
}

/// Reads a POST's JSON body: an object, or an array of objects (a batch).
pub fn from_body(body: &[u8]) -> Result<Batch, String> {
    let not_request = |error: serde_json::Error| format!("the body is not a GraphQL request in JSON: {error}");
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    match first {
        None => Err("the body is empty; it must be a GraphQL request in JSON".to_owned()),
        Some(b'[') => {
            let batch: Vec<Params> = serde_json::from_slice(body).map_err(not_request)?;
            if batch.is_empty() {
                return Err("the batch is empty".to_owned());
            }
            let batch = batch.into_iter().map(Params::check).collect::<Result<_, _>>()?;
            Ok(Batch::Batch(batch))
        }
        Some(_) => Ok(Batch::Single(serde_json::from_slice::<Params>(body).map_err(not_request)?.check()?)),
    }
}

/// Reads a GET's URL parameters; `variables` and `extensions` are JSON text.
pub fn from_url(query_string: &str) -> Result<Params, String> {
    let mut params = Params::default();
    let mut seen = Vec::new();
    for (name, value) in form_urlencoded::parse(query_string.as_bytes()) {
        if seen.contains(&name) {
            return Err(format!("the URL parameter `{name}` is given twice"));
        }
        match name.as_ref() {
            "query" => params.query = Some(value.into_owned()),
            "operationName" => params.operation_name = Some(value.into_owned()),
            "documentId" => params.document_id = Some(value.into_owned()),
            "variables" => params.variables = json_map("variables", &value)?,
            "extensions" => params.extensions = json_map("extensions", &value)?,
            _ => continue,
        }
        seen.push(name);
    }
    params.check()
}

/// A URL parameter holding a JSON object (or `null`).
fn json_map(name: &str, text: &str) -> Result<Option<Map<String, Value>>, String> {
    serde_json::from_str::<Option<Map<String, Value>>>(text)
        .map_err(|error| format!("the URL parameter `{name}` is not a JSON object: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<Batch, String> {
        from_body(json.as_bytes())
    }

    #[test]
    fn every_parameter_may_be_null_or_absent_but_the_document() {
        assert!(body(r#"{"query":"{ me { id } }","variables":null,"operationName":null,"extensions":null}"#).is_ok());
        assert!(body(r#"{"query":"{ me { id } }"}"#).is_ok());
        assert!(body(r#"{"notquery":"{ me { id } }"}"#).unwrap_err().contains("no `query`"));
        assert!(body(r#"{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ab"}}}"#).is_ok());
        assert!(body(r#"{"documentId":"sha256:ab"}"#).is_ok());
    }

    #[test]
    fn a_parameter_of_the_wrong_type_is_malformed() {
        for invalid in [r#"{"obj":"ect"}"#, "0", "false", r#"["array"]"#] {
            assert!(body(&format!(r#"{{"query":{invalid}}}"#)).is_err(), "query: {invalid}");
            assert!(body(&format!(r#"{{"query":"{{a}}","operationName":{invalid}}}"#)).is_err(), "name: {invalid}");
        }
        for invalid in [r#""string""#, "0", "false", r#"["array"]"#] {
            assert!(body(&format!(r#"{{"query":"{{a}}","variables":{invalid}}}"#)).is_err(), "variables: {invalid}");
            assert!(body(&format!(r#"{{"query":"{{a}}","extensions":{invalid}}}"#)).is_err(), "extensions: {invalid}");
        }
        for invalid in ["", "   ", "null", "0", r#""query""#, "[]", r#"{ "not a JSON"#] {
            assert!(body(invalid).is_err(), "body: {invalid:?}");
        }
    }

    #[test]
    fn a_batch_is_an_array_of_requests() {
        let Ok(Batch::Batch(batch)) = body(r#"[{"query":"{ a }"},{"query":"{ b }"}]"#) else { panic!("a batch") };
        assert_eq!(batch.len(), 2);
        assert!(body(r#"[{"query":"{ a }"},{"nothing":1}]"#).is_err());
    }

    #[test]
    fn url_parameters_carry_json_variables_and_extensions() {
        let params = from_url(
            "query=query%20Q(%24n%3A%20String!)%20%7B%20a%20%7D&variables=%7B%22n%22%3A%22x%22%7D&operationName=Q",
        )
        .unwrap();
        assert_eq!(params.query.as_deref(), Some("query Q($n: String!) { a }"));
        assert_eq!(params.operation_name.as_deref(), Some("Q"));
        assert_eq!(params.variables.unwrap()["n"], "x");
        assert!(from_url("query=%7Ba%7D&variables=%5B1%5D").unwrap_err().contains("not a JSON object"));
        assert!(from_url("query=%7Ba%7D&query=%7Bb%7D").unwrap_err().contains("twice"));
        assert!(from_url("variables=%7B%7D").unwrap_err().contains("no `query`"));
        assert!(from_url("query=%7Ba%7D&variables=null&unknown=1").is_ok());
    }
}
