//! The API's wire format: JSON lines over a Unix stream socket.
//!
//! A client writes one request per line, a JSON object whose `cmd` names the command:
//!
//! ```text
//! {"cmd":"status"}
//! {"cmd":"services"}
//! {"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"weight","weight":5}
//! {"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"drain"}
//! {"cmd":"sessions","service":"dns","limit":100}
//! {"cmd":"reload"}
//! {"cmd":"drain-node"}
//! {"cmd":"undrain-node"}
//! ```
//!
//! and reads one line back: `{"ok":true,"data":...}` or `{"ok":false,"error":"message"}`.
//! Requests are read strictly, as the config file is: an unknown field is an error, so a typo
//! is reported instead of silently ignored. Every problem has its own message, and that
//! message is the `error` of the reply.

use std::fmt;
use std::net::SocketAddrV4;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Most a backend weight can be (what `sluicectl backend ... weight N` accepts).
pub const MAX_WEIGHT: u32 = 65535;

/// One command to the running appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Version, uptime, workers, ports, session count: a `Status`.
    Status,
    /// Every service with its backends: a `Vec<ServiceStatus>`.
    Services,
    /// Changes one backend of one service; the reply is its `BackendStatus` afterwards.
    Backend { service: String, address: SocketAddrV4, action: BackendAction },
    /// The session table, optionally of one service, at most `limit` rows: a `Vec<SessionRow>`.
    Sessions { service: Option<String>, limit: Option<usize> },
    /// Re-reads the config file, as SIGHUP does: a `ReloadReport`.
    Reload,
    /// Withdraws this node's VIPs from its BGP neighbours (forwarding goes on): a `BgpStatus`.
    DrainNode,
    /// Announces them again after `DrainNode`: a `BgpStatus`.
    UndrainNode,
}

/// What `Request::Backend` does to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendAction {
    /// Sets the weight (0..=`MAX_WEIGHT`); 0 takes no new sessions.
    Weight(u32),
    /// No new sessions; its sessions go on.
    Drain,
    /// Back in service after `Drain`.
    Enable,
}

const COMMANDS: &str = "status, services, backend, sessions, reload, drain-node, undrain-node";
const ACTIONS: &str = "weight, drain, enable";

impl Request {
    /// The name of the command on the wire (`"status"`, ...).
    pub fn command(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Services => "services",
            Request::Backend { .. } => "backend",
            Request::Sessions { .. } => "sessions",
            Request::Reload => "reload",
            Request::DrainNode => "drain-node",
            Request::UndrainNode => "undrain-node",
        }
    }

    /// Parses one request line; the error is the message for the `{"ok":false}` reply.
    pub fn parse(line: &str) -> Result<Request, String> {
        let line = line.trim();
        if line.is_empty() {
            return Err("empty request: expected a JSON object such as {\"cmd\":\"status\"}".into());
        }
        let value: Value = serde_json::from_str(line).map_err(|e| format!("bad JSON: {e}"))?;
        Request::from_value(&value)
    }

    /// Reads a request from a JSON value already parsed.
    pub fn from_value(value: &Value) -> Result<Request, String> {
        let Value::Object(object) = value else {
            return Err("a request must be a JSON object such as {\"cmd\":\"status\"}".into());
        };
        let fields = Fields { object, cmd: None };
        let cmd = fields.required_str("cmd")?;
        let fields = Fields { object, cmd: Some(cmd) };
        match cmd {
            "status" => fields.only(&[]).map(|_| Request::Status),
            "services" => fields.only(&[]).map(|_| Request::Services),
            "reload" => fields.only(&[]).map(|_| Request::Reload),
            "drain-node" => fields.only(&[]).map(|_| Request::DrainNode),
            "undrain-node" => fields.only(&[]).map(|_| Request::UndrainNode),
            "sessions" => {
                fields.only(&["service", "limit"])?;
                let service = fields.optional_str("service")?.map(str::to_owned);
                let limit = match fields.optional_u64("limit")? {
                    Some(0) => return Err("limit must be at least 1".into()),
                    Some(n) => Some(usize::try_from(n).map_err(|_| format!("limit {n} is too large"))?),
                    None => None,
                };
                Ok(Request::Sessions { service, limit })
            }
            "backend" => {
                let service = fields.required_str("service")?.to_owned();
                let text = fields.required_str("address")?;
                let address = text
                    .parse::<SocketAddrV4>()
                    .map_err(|_| format!("bad address `{text}`: expected IPv4:PORT, e.g. 198.18.1.2:53"))?;
                let action = match fields.required_str("action")? {
                    "weight" => BackendAction::Weight(fields.weight()?),
                    "drain" | "enable" if object.contains_key("weight") => {
                        return Err("field `weight` goes only with action `weight`".into())
                    }
                    "drain" => BackendAction::Drain,
                    "enable" => BackendAction::Enable,
                    other => return Err(format!("unknown action `{other}` (expected one of {ACTIONS})")),
                };
                fields.only(&["service", "address", "action", "weight"])?;
                Ok(Request::Backend { service, address, action })
            }
            other => Err(format!("unknown cmd `{other}` (expected one of {COMMANDS})")),
        }
    }

    /// The request as a JSON object, as `parse` reads it.
    pub fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("cmd".into(), self.command().into());
        match self {
            Request::Status | Request::Services | Request::Reload | Request::DrainNode | Request::UndrainNode => {}
            Request::Backend { service, address, action } => {
                object.insert("service".into(), service.as_str().into());
                object.insert("address".into(), address.to_string().into());
                let action = match action {
                    BackendAction::Weight(weight) => {
                        object.insert("weight".into(), (*weight).into());
                        "weight"
                    }
                    BackendAction::Drain => "drain",
                    BackendAction::Enable => "enable",
                };
                object.insert("action".into(), action.into());
            }
            Request::Sessions { service, limit } => {
                if let Some(service) = service {
                    object.insert("service".into(), service.as_str().into());
                }
                if let Some(limit) = limit {
                    object.insert("limit".into(), (*limit as u64).into());
                }
            }
        }
        Value::Object(object)
    }

    /// The request as one line, newline included, ready to write to the socket; `cmd` first
    /// for whoever reads it by eye.
    pub fn to_line(&self) -> String {
        let mut rest = self.to_value();
        if let Value::Object(object) = &mut rest {
            object.remove("cmd");
        }
        let rest = rest.to_string();
        let cmd = Value::from(self.command());
        match rest.strip_prefix('{').filter(|r| *r != "}") {
            Some(fields) => format!("{{\"cmd\":{cmd},{fields}\n"),
            None => format!("{{\"cmd\":{cmd}}}\n"),
        }
    }
}

impl fmt::Display for BackendAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendAction::Weight(w) => write!(f, "weight {w}"),
            BackendAction::Drain => f.write_str("drain"),
            BackendAction::Enable => f.write_str("enable"),
        }
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Request, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Request::from_value(&value).map_err(D::Error::custom)
    }
}

/// The fields of one request object, read with messages that name the field and the command.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    cmd: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn context(&self) -> String {
        self.cmd.map(|cmd| format!(" for cmd `{cmd}`")).unwrap_or_default()
    }

    /// Refuses any field but `cmd` and `allowed`.
    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        match self.object.keys().find(|k| *k != "cmd" && !allowed.contains(&k.as_str())) {
            Some(key) => Err(format!("unknown field `{key}`{}", self.context())),
            None => Ok(()),
        }
    }

    fn required_str(&self, name: &str) -> Result<&'a str, String> {
        self.optional_str(name)?.ok_or_else(|| format!("missing field `{name}`{}", self.context()))
    }

    fn optional_str(&self, name: &str) -> Result<Option<&'a str>, String> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("field `{name}` must be a string, not {}", kind(other))),
        }
    }

    /// The `weight` of action `weight`: an integer in 0..=`MAX_WEIGHT`.
    fn weight(&self) -> Result<u32, String> {
        let n = match self.object.get("weight") {
            None | Some(Value::Null) => return Err("missing field `weight` for action `weight`".into()),
            Some(Value::Number(n)) => n,
            Some(other) => return Err(format!("field `weight` must be an integer, not {}", kind(other))),
        };
        match (n.as_u64(), n.as_f64()) {
            (Some(w), _) if w <= u64::from(MAX_WEIGHT) => Ok(w as u32),
            // A fraction, or an integer written as one ("5.0"), within the range.
            (None, Some(f)) if n.is_f64() && (0.0..=f64::from(MAX_WEIGHT)).contains(&f) => {
                Err(format!("field `weight` must be an integer, not {n}"))
            }
            _ => Err(format!("weight {n} out of range 0..={MAX_WEIGHT}")),
        }
    }

    fn optional_u64(&self, name: &str) -> Result<Option<u64>, String> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(u) => Ok(Some(u)),
                None => Err(format!("field `{name}` must be a non-negative integer, not {n}")),
            },
            Some(other) => Err(format!("field `{name}` must be a non-negative integer, not {}", kind(other))),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The reply line for a handler's result, newline included: `{"ok":true,"data":...}` or
/// `{"ok":false,"error":"..."}`, `ok` first for whoever reads it by eye.
pub fn response_line(result: &Result<Value, String>) -> String {
    match result {
        Ok(data) => format!("{{\"ok\":true,\"data\":{data}}}\n"),
        Err(message) => format!("{{\"ok\":false,\"error\":{}}}\n", Value::from(message.as_str())),
    }
}

/// Reads a reply line: `Ok(data)`, or `Err` with the server's message or what was wrong
/// with the reply itself.
pub fn parse_response(line: &str) -> Result<Value, String> {
    let value: Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("malformed reply from the daemon: {e}"))?;
    match value.get("ok") {
        Some(Value::Bool(true)) => Ok(value.get("data").cloned().unwrap_or(Value::Null)),
        Some(Value::Bool(false)) => Err(match value.get("error") {
            Some(Value::String(message)) => message.clone(),
            _ => "the daemon refused the request without saying why".into(),
        }),
        _ => Err(format!("malformed reply from the daemon: no `ok` field in {value}")),
    }
}
