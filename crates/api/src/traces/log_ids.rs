//! `trace_id` and `span_id` on every JSON log line written inside a span, so
//! that a log line leads to its trace. The JSON formatter writes the line as
//! before; the two ids are added as its last fields.

use std::sync::OnceLock;

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The subscriber the spans live in. A formatter runs inside the dispatch of
/// its event, where `tracing` gives no access to the current subscriber, so it
/// is remembered when logging starts.
static SUBSCRIBER: OnceLock<WeakDispatch> = OnceLock::new();

/// Remembers the subscriber that formats with [`WithTraceIds`].
pub fn remember(dispatch: &Dispatch) {
    let _ = SUBSCRIBER.set(dispatch.downgrade());
}

/// A JSON event format with the current span's trace and span ids appended.
pub struct WithTraceIds<F> {
    json: F,
}

impl<F> WithTraceIds<F> {
    pub fn new(json: F) -> Self {
        WithTraceIds { json }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let Some(ids) = ctx.lookup_current().map(|span| span.id()).and_then(|id| span_context(&id)) else {
            return self.json.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.json.format_event(ctx, Writer::new(&mut line), event)?;
        // One object and a newline: the ids go in before the closing brace.
        match line.trim_end().strip_suffix('}') {
            Some(open) => {
                let comma = if open.ends_with('{') { "" } else { "," };
                writeln!(writer, r#"{open}{comma}"trace_id":"{}","span_id":"{}"}}"#, ids.trace_id(), ids.span_id())
            }
            None => writer.write_str(&line),
        }
    }
}

fn span_context(id: &tracing::span::Id) -> Option<SpanContext> {
    let dispatch = SUBSCRIBER.get()?.upgrade()?;
    let context = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}
