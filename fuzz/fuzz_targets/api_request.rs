//! The API socket's request handling on arbitrary bytes: never a panic; every line gets exactly
//! one reply line of JSON with `ok`; a request that parses goes to the handler as it was
//! written (it reads back the same from its own JSON); and `sluicectl`'s reply parser takes
//! whatever the server can send.

#![no_main]

use ctrlplane::api::{answer, parse_response, Request, MAX_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_LINE {
        return;
    }
    let mut handled = None;
    let reply = answer(data, &mut |request: Request| {
        handled = Some(request.clone());
        Ok(request.to_value())
    });
    assert!(reply.ends_with('\n') && reply.matches('\n').count() == 1, "one line: {reply:?}");
    let value: serde_json::Value = serde_json::from_str(&reply).expect("the reply is JSON");
    assert!(value.get("ok").is_some_and(|ok| ok.is_boolean()));
    let read = parse_response(&reply);
    if let Some(request) = handled {
        assert_eq!(Request::parse(&request.to_line()), Ok(request.clone()), "the request reads back");
        assert_eq!(read, Ok(request.to_value()));
    } else {
        assert!(read.is_err(), "a refusal reads as one");
    }
    // The client's side: any line from a daemon is read without panicking.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_response(text);
    }
});
