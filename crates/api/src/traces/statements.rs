//! A client span for each SQL statement, the child of the span that ran it,
//! from the moment it started to the moment it finished. It carries the
//! statement's text as storage sent it, with placeholders where the values go:
//! every value is bound, none is written into the SQL.

use std::time::SystemTime;

use appeals_storage::statements::{DatabaseKind, ExecutedStatement};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TRACER;

/// The storage crate's statement observer. A statement outside any sampled
/// span (the delivery worker polling its outbox, migrations) is not traced.
pub(super) fn trace_statement(statement: &ExecutedStatement<'_>) {
    let Some(tracer) = TRACER.get() else {
        return;
    };
    let parent = tracing::Span::current().context();
    if !parent.span().span_context().is_sampled() {
        return;
    }
    let finished = SystemTime::now();
    let started = finished.checked_sub(statement.elapsed).unwrap_or(finished);
    let system = match statement.database {
        DatabaseKind::Postgres => "postgresql",
        DatabaseKind::Sqlite => "sqlite",
    };
    let shape = Shape::of(statement.sql);
    let name = match (shape.operation, shape.collection) {
        (Some(operation), Some(collection)) => format!("{operation} {collection}"),
        (Some(operation), None) => operation.to_owned(),
        (None, _) => system.to_owned(),
    };
    let mut attributes = Vec::with_capacity(5);
    attributes.push(KeyValue::new("db.system", system));
    attributes.push(KeyValue::new("db.system.name", system));
    attributes.push(KeyValue::new("db.query.text", statement.sql.to_owned()));
    if let Some(operation) = shape.operation {
        attributes.push(KeyValue::new("db.operation.name", operation));
    }
    if let Some(collection) = shape.collection {
        attributes.push(KeyValue::new("db.collection.name", collection.to_owned()));
    }
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .with_start_time(started)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    if statement.failed {
        span.set_status(Status::error(""));
    }
    span.end_with_timestamp(finished);
}

/// What a statement does, and to which table, read from its first words.
#[derive(Debug, PartialEq, Eq)]
struct Shape<'a> {
    operation: Option<&'static str>,
    collection: Option<&'a str>,
}

impl<'a> Shape<'a> {
    fn of(sql: &'a str) -> Shape<'a> {
        const OPERATIONS: &[&str] =
            &["SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "WITH"];
        let mut words = sql.split_whitespace();
        let first = words.next().unwrap_or_default();
        let Some(operation) = OPERATIONS.iter().find(|known| known.eq_ignore_ascii_case(first)).copied() else {
            return Shape { operation: None, collection: None };
        };
        let table_after = |keyword: &str, mut words: std::str::SplitWhitespace<'a>| {
            words.find(|word| word.eq_ignore_ascii_case(keyword)).and_then(|_| words.next())
        };
        let table = match operation {
            "SELECT" | "DELETE" => table_after("FROM", words),
            "INSERT" => table_after("INTO", words),
            "UPDATE" => words.next(),
            _ => None,
        };
        let collection = table
            .map(|table| table.trim_matches(|c: char| c == '"' || c == '`'))
            .filter(|table| !table.is_empty() && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        Shape { operation: Some(operation), collection }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_named_by_its_operation_and_table() {
        let cases = [
            (r#"SELECT "appeal"."id" FROM "appeal" WHERE "id" = $1"#, Some("SELECT"), Some("appeal")),
            (r#"INSERT INTO "appeal_event" ("id") VALUES (?)"#, Some("INSERT"), Some("appeal_event")),
            (r#"UPDATE "appeal" SET "version" = $1 WHERE "id" = $2"#, Some("UPDATE"), Some("appeal")),
            (r#"DELETE FROM "reply" WHERE "id" = ?"#, Some("DELETE"), Some("reply")),
            ("SELECT * FROM (SELECT 0 AS \"part\") AS \"part_0\"", Some("SELECT"), None),
            ("BEGIN IMMEDIATE", Some("BEGIN"), None),
            ("select 1", Some("SELECT"), None),
            ("PRAGMA foreign_keys = ON", None, None),
            ("", None, None),
        ];
        for (sql, operation, collection) in cases {
            assert_eq!(Shape::of(sql), Shape { operation, collection }, "{sql}");
        }
    }
}
