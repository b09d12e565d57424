//! The appliance's log, on the `log` crate's macros: one line per event on stderr (journald
//! adds the timestamps). As text, `sluice: LEVEL: message` with LEVEL one of error, warning,
//! info, debug, trace: the lines the contract and operators' scripts know. As JSON
//! (`--log-format json`), one object per line with `level`, `topic` (the target given to the
//! macro: `health`, `reload`, `cluster`, `bgp`; absent for module paths), `message` and the
//! event's structured fields (a health transition's service, backend, state and reason...).
//! The least severe level written is `--log-level` (or SLUICE_LOG). Never used on the packet
//! path.

use std::io::Write;

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};

/// How a line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    format: Format,
}

/// Installs the logger for the process; a second call changes nothing.
pub fn init(level: LevelFilter, format: Format) {
    if log::set_boxed_logger(Box::new(Logger { format })).is_ok() {
        log::set_max_level(level);
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let line = render(self.format, record);
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }

    fn flush(&self) {}
}

/// Where a control-plane thread's lines go (`ctrlplane::bgp::Log`): into this log under
/// `topic`, with the event's fields.
pub fn control_plane(topic: &'static str) -> ctrlplane::bgp::Log {
    std::sync::Arc::new(move |level, line: &str, fields: ctrlplane::bgp::Fields| {
        let level = match level {
            ctrlplane::bgp::Level::Info => Level::Info,
            ctrlplane::bgp::Level::Warning => Level::Warn,
            ctrlplane::bgp::Level::Error => Level::Error,
        };
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        log::logger().log(
            &Record::builder()
                .args(format_args!("{line}"))
                .level(level)
                .target(topic)
                .key_values(&fields.as_slice())
                .build(),
        );
    })
}

/// One record as one line, without the newline.
pub fn render(format: Format, record: &Record) -> String {
    match format {
        Format::Text => format!("sluice: {}: {}", level_name(record.level()), record.args()),
        Format::Json => {
            let mut object = serde_json::Map::new();
            object.insert("level".into(), level_name(record.level()).into());
            if !record.target().contains("::") {
                object.insert("topic".into(), record.target().into());
            }
            object.insert("message".into(), record.args().to_string().into());
            let _ = record.key_values().visit(&mut Fields(&mut object));
            serde_json::Value::Object(object).to_string()
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// Structured fields into the JSON object: numbers and booleans as such, the rest as text.
struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let json = if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else if let Some(b) = value.to_bool() {
            b.into()
        } else {
            value.to_string().into()
        };
        self.0.insert(key.as_str().to_owned(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: Format, record: &Record) -> String {
        render(format, record)
    }

    #[test]
    fn text_lines_keep_their_form() {
        let args = format_args!("ready: 2 interfaces");
        let record = Record::builder().args(args).level(Level::Info).target("sluice::appliance").build();
        assert_eq!(line(Format::Text, &record), "sluice: info: ready: 2 interfaces");
        let args = format_args!("reload refused");
        let record = Record::builder().args(args).level(Level::Warn).target("reload").build();
        assert_eq!(line(Format::Text, &record), "sluice: warning: reload refused");
    }

    #[test]
    fn json_lines_carry_topic_and_fields() {
        let fields: &[(&str, Value)] = &[("service", "dns".into()), ("up", false.into()), ("checks", 3u64.into())];
        let args = format_args!("health: service=dns up -> down");
        let record = Record::builder().args(args).level(Level::Info).target("health").key_values(&fields).build();
        let json: serde_json::Value = serde_json::from_str(&line(Format::Json, &record)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"level": "info", "topic": "health", "message": "health: service=dns up -> down",
                "service": "dns", "up": false, "checks": 3})
        );
        let args = format_args!("stopped");
        let record = Record::builder().args(args).level(Level::Error).target("sluice::appliance").build();
        let json: serde_json::Value = serde_json::from_str(&line(Format::Json, &record)).unwrap();
        assert_eq!(json, serde_json::json!({"level": "error", "message": "stopped"}));
    }
}
