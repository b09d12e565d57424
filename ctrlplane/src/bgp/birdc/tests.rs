use super::*;

/// `show protocols` as BIRD 2.0.12 answered it here.
const SHOW_PROTOCOLS: &str = "\
2002-Name       Proto      Table      State  Since         Info
1002-sluice_device Device     ---        up     13:03:15.462  
 sluice_routes Static     master4    up     13:03:15.462  
 sluice_bfd BFD        ---        up     13:03:15.462  
 bgp_198_18_0_254 BGP        ---        up     13:03:16.001  Established   
 bgp_198_18_0_253 BGP        ---        start  13:03:15.462  Active        Socket: Connection refused
0000 
";

#[test]
fn a_reply_ends_at_its_first_line_with_a_space_after_the_code() {
    let (reply, used) = parse_reply(SHOW_PROTOCOLS).expect("complete").expect("valid");
    assert_eq!(used, SHOW_PROTOCOLS.len());
    assert_eq!(reply.code, 0);
    assert!(!reply.failed());
    assert_eq!(reply.lines.len(), 7);
    assert_eq!(reply.lines[2], (1002, "sluice_routes Static     master4    up     13:03:15.462  ".to_owned()));
}

#[test]
fn an_incomplete_reply_waits_for_more() {
    let cut = &SHOW_PROTOCOLS[..SHOW_PROTOCOLS.len() - 3];
    assert_eq!(parse_reply(cut), None);
    assert_eq!(parse_reply("0001 BIRD 2.0.12 rea"), None);
    assert_eq!(parse_reply(""), None);
}

#[test]
fn replies_are_taken_one_at_a_time() {
    let two = "0001 BIRD 2.0.12 ready.\n0002-Reading configuration from /x\n0003 Reconfigured\n";
    let (first, used) = parse_reply(two).unwrap().unwrap();
    assert_eq!((first.code, used), (1, 24));
    let (second, _) = parse_reply(&two[used..]).unwrap().unwrap();
    assert_eq!(second.code, 3);
    assert_eq!(second.text(), "Reading configuration from /x; Reconfigured");
}

#[test]
fn errors_and_spontaneous_lines() {
    let (reply, _) = parse_reply("+0006 some log line\n8002 /x:3:1 syntax error\n").unwrap().unwrap();
    assert!(reply.failed());
    assert_eq!(reply.text(), "/x:3:1 syntax error");
    assert!(parse_reply("hello\n").unwrap().is_err());
    assert!(parse_reply(" orphan\n").unwrap().is_err());
    assert!(parse_reply("0000?x\n").unwrap().is_err());
}

#[test]
fn protocols_are_read_by_column() {
    let (reply, _) = parse_reply(SHOW_PROTOCOLS).unwrap().unwrap();
    let rows = parse_protocols(&reply);
    assert_eq!(rows.len(), 5);
    let up = &rows[3];
    assert_eq!((up.name.as_str(), up.proto.as_str(), up.state.as_str()), ("bgp_198_18_0_254", "BGP", "up"));
    assert!(up.established());
    let down = &rows[4];
    assert_eq!(down.info, "Active Socket: Connection refused");
    assert!(!down.established());
    assert!(!rows[0].established(), "a device protocol is no session");
}
