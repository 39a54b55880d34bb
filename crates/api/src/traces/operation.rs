//! One span per GraphQL operation, over HTTP or WebSocket, as the semantic
//! conventions name it: `query ListAppeals` (or `query` when anonymous), with
//! `graphql.operation.type` and `graphql.operation.name`. Neither the document
//! nor its variables are recorded. A failed operation has the error status and
//! its first error's code as `error.type`; a message, which may quote the
//! input, is never recorded.

use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest, NextSubscribe,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use async_graphql::{Request, Response, ServerError, ServerResult, Variables};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TraceContextExt};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::ErrorCode;

/// The extension; registered only when traces are on.
pub struct OperationSpans;

impl ExtensionFactory for OperationSpans {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationSpan::default())
    }
}

/// One operation's span, and the operation name the request asked for.
#[derive(Default)]
struct OperationSpan {
    span: OnceLock<Span>,
    requested_name: Mutex<Option<String>>,
}

impl OperationSpan {
    /// The span, named as the conventions name an operation not yet parsed
    /// (and one that does not parse).
    fn open(&self) -> Span {
        self.span.get_or_init(|| tracing::info_span!("GraphQL Operation")).clone()
    }

    /// Names the span after the operation the request will run, as
    /// async-graphql picks it: the one named, or the only one.
    fn name_after(&self, document: &ExecutableDocument) {
        let Some(span) = self.span.get() else {
            return;
        };
        let requested = self.requested_name.lock().ok().and_then(|name| name.clone());
        let (name, operation) = match (&document.operations, requested) {
            (DocumentOperations::Single(operation), _) => (None, operation),
            (DocumentOperations::Multiple(operations), Some(requested)) => {
                match operations.get_key_value(requested.as_str()) {
                    Some((name, operation)) => (Some(name.as_str()), operation),
                    None => return,
                }
            }
            (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
                match operations.iter().next() {
                    Some((name, operation)) => (Some(name.as_str()), operation),
                    None => return,
                }
            }
            (DocumentOperations::Multiple(_), None) => return,
        };
        let kind = operation.node.ty.to_string();
        let context = span.context();
        let otel = context.span();
        otel.update_name(match name {
            Some(name) => format!("{kind} {name}"),
            None => kind.clone(),
        });
        otel.set_attribute(KeyValue::new("graphql.operation.type", kind));
        if let Some(name) = name {
            otel.set_attribute(KeyValue::new("graphql.operation.name", name.to_owned()));
        }
    }
}

#[async_trait::async_trait]
impl Extension for OperationSpan {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let span = self.open();
        let response = next.run(ctx).instrument(span.clone()).await;
        record_errors(&span, &response.errors);
        response
    }

    /// Every operation on a WebSocket arrives here, queries and mutations too.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let span = self.open();
        let mut responses = next.run(ctx, stream);
        futures_util::stream::poll_fn(move |cx| {
            let _entered = span.enter();
            let polled = responses.poll_next_unpin(cx);
            if let std::task::Poll::Ready(Some(response)) = &polled {
                record_errors(&span, &response.errors);
            }
            polled
        })
        .boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Ok(mut requested) = self.requested_name.lock() {
            requested.clone_from(&request.operation_name);
        }
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        self.name_after(&document);
        Ok(document)
    }
}

/// Marks the span failed with the first error's code.
fn record_errors(span: &Span, errors: &[ServerError]) {
    let Some(error) = errors.first() else {
        return;
    };
    // Errors without a code are async-graphql's own: the client's mistakes
    // (see `error::code_unclassified`).
    let code = error
        .extensions
        .as_ref()
        .and_then(|extensions| extensions.get("code"))
        .and_then(|code| match code {
            async_graphql::Value::String(code) => Some(code.clone()),
            _ => None,
        })
        .unwrap_or_else(|| ErrorCode::Validation.as_str().to_owned());
    span.set_attribute("error.type", code.clone());
    span.set_status(Status::error(code));
}
