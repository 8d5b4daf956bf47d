//! The JSON log line: one object per event, `timestamp`, `level`, then the event's fields in
//! the order they were written, with a [`List`](super::List) written as a JSON array (the
//! stock JSON format of `tracing-subscriber` writes every `?` field as a string).

use std::fmt::{self, Write as _};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::LIST_MARKER;

/// The event formatter for `--log-format json`.
pub(crate) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut line = String::with_capacity(256);
        line.push('{');
        push_pair(&mut line, "timestamp", &Value::String(timestamp));
        push_pair(
            &mut line,
            "level",
            &event.metadata().level().as_str().into(),
        );
        event.record(&mut Fields { line: &mut line });
        line.push('}');
        writeln!(writer, "{line}")
    }
}

fn push_pair(line: &mut String, key: &str, value: &Value) {
    if !line.ends_with('{') {
        line.push(',');
    }
    // Serialising a string or a `Value` cannot fail.
    line.push_str(&serde_json::to_string(key).unwrap_or_default());
    line.push(':');
    line.push_str(&serde_json::to_string(value).unwrap_or_default());
}

struct Fields<'a> {
    line: &'a mut String,
}

impl Fields<'_> {
    fn push(&mut self, field: &Field, value: Value) {
        push_pair(self.line, field.name(), &value);
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `tracing`'s value types are sealed, so a list can only say what it is through its
        // Debug text: in the alternate form a `List` starts with a marker no escaped value
        // can contain, followed by its JSON.
        let mut text = String::new();
        let _ = write!(text, "{value:#?}");
        if let Some(json) = text.strip_prefix(LIST_MARKER)
            && let Ok(list @ Value::Array(_)) = serde_json::from_str(json)
        {
            return self.push(field, list);
        }
        text.clear();
        let _ = write!(text, "{value:?}");
        self.push(field, text.into());
    }
}
