//! Request parsing (every command, every malformed case with its message) and reply framing.

use std::net::SocketAddrV4;

use serde_json::json;

use super::protocol::{parse_response, response_line, BackendAction, Request};

fn addr(text: &str) -> SocketAddrV4 {
    text.parse().unwrap()
}

#[test]
fn every_command_parses() {
    assert_eq!(Request::parse(r#"{"cmd":"status"}"#), Ok(Request::Status));
    assert_eq!(Request::parse(r#"{"cmd":"services"}"#), Ok(Request::Services));
    assert_eq!(Request::parse(r#" {"cmd":"reload"} "#), Ok(Request::Reload));
    assert_eq!(Request::parse(r#"{"cmd":"drain-node"}"#), Ok(Request::DrainNode));
    assert_eq!(Request::parse(r#"{"cmd":"undrain-node"}"#), Ok(Request::UndrainNode));
    assert_eq!(
        Request::parse(r#"{"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"weight","weight":5}"#),
        Ok(Request::Backend {
            service: "dns".into(),
            address: addr("198.18.1.2:53"),
            action: BackendAction::Weight(5)
        })
    );
    assert_eq!(
        Request::parse(r#"{"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"drain"}"#),
        Ok(Request::Backend { service: "dns".into(), address: addr("198.18.1.2:53"), action: BackendAction::Drain })
    );
    assert_eq!(
        Request::parse(r#"{"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"enable"}"#),
        Ok(Request::Backend { service: "dns".into(), address: addr("198.18.1.2:53"), action: BackendAction::Enable })
    );
    assert_eq!(
        Request::parse(r#"{"cmd":"sessions","service":"dns","limit":100}"#),
        Ok(Request::Sessions { service: Some("dns".into()), limit: Some(100) })
    );
    assert_eq!(Request::parse(r#"{"cmd":"sessions"}"#), Ok(Request::Sessions { service: None, limit: None }));
    assert_eq!(
        Request::parse(r#"{"cmd":"sessions","service":null,"limit":7}"#),
        Ok(Request::Sessions { service: None, limit: Some(7) })
    );
}

#[test]
fn weight_bounds_are_inclusive() {
    let weight = |w: &str| {
        Request::parse(&format!(
            r#"{{"cmd":"backend","service":"s","address":"198.18.1.2:80","action":"weight","weight":{w}}}"#
        ))
    };
    assert!(matches!(weight("0"), Ok(Request::Backend { action: BackendAction::Weight(0), .. })));
    assert!(matches!(weight("65535"), Ok(Request::Backend { action: BackendAction::Weight(65535), .. })));
    assert_eq!(weight("65536"), Err("weight 65536 out of range 0..=65535".into()));
    assert_eq!(weight("-1"), Err("weight -1 out of range 0..=65535".into()));
    assert_eq!(weight("18446744073709551616"), Err("weight 1.8446744073709552e+19 out of range 0..=65535".into()));
    assert_eq!(weight("5.0"), Err("field `weight` must be an integer, not 5.0".into()));
    assert_eq!(weight("1e9"), Err("weight 1000000000.0 out of range 0..=65535".into()));
    assert_eq!(weight("2.5"), Err("field `weight` must be an integer, not 2.5".into()));
    assert_eq!(weight("\"5\""), Err("field `weight` must be an integer, not a string".into()));
}

#[test]
fn malformed_requests_say_what_is_wrong() {
    let cases = [
        ("", "empty request: expected a JSON object such as {\"cmd\":\"status\"}"),
        ("{\"cmd\":", "bad JSON: EOF while parsing a value at line 1 column 7"),
        ("status", "bad JSON: expected value at line 1 column 1"),
        ("[1,2]", "a request must be a JSON object such as {\"cmd\":\"status\"}"),
        ("{}", "missing field `cmd`"),
        (r#"{"cmd":5}"#, "field `cmd` must be a string, not a number"),
        (r#"{"cmd":"stop"}"#, "unknown cmd `stop` (expected one of status, services, backend, sessions, reload, drain-node, undrain-node)"),
        (r#"{"cmd":"status","verbose":true}"#, "unknown field `verbose` for cmd `status`"),
        (r#"{"cmd":"sessions","limt":5}"#, "unknown field `limt` for cmd `sessions`"),
        (r#"{"cmd":"sessions","limit":0}"#, "limit must be at least 1"),
        (r#"{"cmd":"sessions","limit":-3}"#, "field `limit` must be a non-negative integer, not -3"),
        (r#"{"cmd":"sessions","limit":"10"}"#, "field `limit` must be a non-negative integer, not a string"),
        (r#"{"cmd":"sessions","service":1}"#, "field `service` must be a string, not a number"),
        (
            r#"{"cmd":"backend","address":"198.18.1.2:53","action":"drain"}"#,
            "missing field `service` for cmd `backend`",
        ),
        (r#"{"cmd":"backend","service":"dns","action":"drain"}"#, "missing field `address` for cmd `backend`"),
        (r#"{"cmd":"backend","service":"dns","address":"198.18.1.2:53"}"#, "missing field `action` for cmd `backend`"),
        (
            r#"{"cmd":"backend","service":"dns","address":"198.18.1.2","action":"drain"}"#,
            "bad address `198.18.1.2`: expected IPv4:PORT, e.g. 198.18.1.2:53",
        ),
        (
            r#"{"cmd":"backend","service":"dns","address":"[::1]:53","action":"drain"}"#,
            "bad address `[::1]:53`: expected IPv4:PORT, e.g. 198.18.1.2:53",
        ),
        (
            r#"{"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"kill"}"#,
            "unknown action `kill` (expected one of weight, drain, enable)",
        ),
        (
            r#"{"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"weight"}"#,
            "missing field `weight` for action `weight`",
        ),
        (
            r#"{"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"drain","weight":1}"#,
            "field `weight` goes only with action `weight`",
        ),
        (
            r#"{"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"drain","force":true}"#,
            "unknown field `force` for cmd `backend`",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(Request::parse(line), Err(message.to_owned()), "for {line:?}");
    }
}

#[test]
fn requests_round_trip_through_their_line() {
    let requests = [
        Request::Status,
        Request::Services,
        Request::Reload,
        Request::DrainNode,
        Request::UndrainNode,
        Request::Backend { service: "web".into(), address: addr("198.18.1.3:80"), action: BackendAction::Weight(7) },
        Request::Backend { service: "web".into(), address: addr("198.18.1.3:80"), action: BackendAction::Drain },
        Request::Backend { service: "web".into(), address: addr("198.18.1.3:80"), action: BackendAction::Enable },
        Request::Sessions { service: None, limit: None },
        Request::Sessions { service: Some("dns".into()), limit: Some(10) },
    ];
    for request in requests {
        let line = request.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "one line: {line:?}");
        assert_eq!(Request::parse(&line), Ok(request.clone()));
        // The serde impls agree with the line format.
        let via_serde: Request = serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(via_serde, request);
    }
    assert_eq!(
        Request::Backend { service: "dns".into(), address: addr("198.18.1.2:53"), action: BackendAction::Weight(5) }
            .to_value(),
        json!({"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"weight","weight":5})
    );
    assert_eq!(Request::Status.to_line(), "{\"cmd\":\"status\"}\n");
    assert_eq!(
        Request::Sessions { service: Some("dns".into()), limit: Some(5) }.to_line(),
        "{\"cmd\":\"sessions\",\"limit\":5,\"service\":\"dns\"}\n"
    );
}

#[test]
fn serde_deserialize_reports_the_parse_message() {
    let err = serde_json::from_str::<Request>(r#"{"cmd":"nope"}"#).unwrap_err();
    assert!(err.to_string().starts_with("unknown cmd `nope`"), "{err}");
}

#[test]
fn replies_are_framed_as_one_line() {
    assert_eq!(response_line(&Ok(json!({"sessions": 3}))), "{\"ok\":true,\"data\":{\"sessions\":3}}\n");
    assert_eq!(
        response_line(&Err("no service `x`\nhere".into())),
        "{\"ok\":false,\"error\":\"no service `x`\\nhere\"}\n"
    );
    assert_eq!(response_line(&Ok(json!(null))), "{\"ok\":true,\"data\":null}\n");
}

#[test]
fn replies_parse_back() {
    assert_eq!(parse_response("{\"ok\":true,\"data\":[1,2]}\n"), Ok(json!([1, 2])));
    assert_eq!(parse_response("{\"ok\":true}"), Ok(json!(null)));
    assert_eq!(parse_response("{\"ok\":false,\"error\":\"no such service\"}"), Err("no such service".into()));
    assert_eq!(parse_response("{\"ok\":false}"), Err("the daemon refused the request without saying why".into()));
    assert_eq!(
        parse_response("{\"data\":1}"),
        Err("malformed reply from the daemon: no `ok` field in {\"data\":1}".into())
    );
    assert!(parse_response("hello").unwrap_err().starts_with("malformed reply from the daemon: "));
    for result in [Ok(json!({"a": "b"})), Err("boom".to_owned())] {
        assert_eq!(parse_response(&response_line(&result)), result);
    }
}
