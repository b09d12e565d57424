//! The tokenizer and the block structure: where braces may stand, comments, quotes, and what
//! is reported when the file does not hold together.

use super::super::diagnostic::Report;
use super::{parse, Statement};

/// The statements of `text` and its diagnostics, rendered one a line.
fn read(text: &str) -> (Vec<Statement>, String) {
    let mut report = Report::new("k.conf");
    let statements = parse(text, &mut report);
    let rendered: Vec<String> = report.finish().iter().map(ToString::to_string).collect();
    (statements, rendered.join("\n"))
}

fn heads(statements: &[Statement]) -> Vec<String> {
    statements.iter().map(Statement::head).collect()
}

#[test]
fn statements_carry_their_values_and_line() {
    let (statements, diagnostics) =
        read("global_defs {\n  router_id lb1\n}\n\nvirtual_server 198.18.0.10 80 {\n  delay_loop 6\n}\n");
    assert_eq!(diagnostics, "");
    assert_eq!(heads(&statements), ["global_defs", "virtual_server 198.18.0.10 80"]);
    assert_eq!(statements[1].line, 5);
    assert_eq!(statements[1].children()[0].keyword, "delay_loop");
    assert_eq!(statements[1].children()[0].args, ["6"]);
    assert_eq!(statements[1].children()[0].line, 6);
}

#[test]
fn a_brace_may_open_on_the_next_line() {
    let (statements, diagnostics) =
        read("virtual_server 198.18.0.10 80\n{\n  real_server 198.18.1.2 80\n\n  {\n    weight 2\n  }\n}\n");
    assert_eq!(diagnostics, "");
    assert_eq!(heads(&statements), ["virtual_server 198.18.0.10 80"]);
    let real = &statements[0].children()[0];
    assert_eq!((real.head(), real.line), ("real_server 198.18.1.2 80".to_owned(), 3));
    assert_eq!(heads(real.children()), ["weight 2"]);
}

#[test]
fn blocks_may_open_and_close_on_one_line() {
    let (statements, diagnostics) = read("url { path /health status_code 200 }\nvirtual_ipaddress { 198.18.0.10 }\n");
    assert_eq!(diagnostics, "");
    assert_eq!(heads(&statements), ["url", "virtual_ipaddress"]);
    assert_eq!(heads(statements[0].children()), ["path /health status_code 200"]);
    assert_eq!(heads(statements[1].children()), ["198.18.0.10"]);
}

#[test]
fn a_keyword_without_block_has_none() {
    let (statements, _) = read("inhibit_on_failure\nweight 1\n");
    assert!(statements.iter().all(|s| s.block.is_none()));
    let (statements, _) = read("virtual_ipaddress {\n}\n");
    assert_eq!(statements[0].block, Some(Vec::new()));
}

#[test]
fn comments_start_with_hash_or_bang_anywhere_outside_quotes() {
    let text = "! a comment\n# another\nweight 1 # the weight\nport 80! glued\nscript \"/bin/check # not a comment\"\n";
    let (statements, diagnostics) = read(text);
    assert_eq!(diagnostics, "");
    assert_eq!(heads(&statements), ["weight 1", "port 80", "script \"/bin/check # not a comment\""]);
    assert_eq!(statements[0].line, 3);
}

#[test]
fn a_comment_hides_a_brace() {
    let (statements, diagnostics) = read("virtual_server 198.18.0.10 80 { # }\n  weight 1\n}\n");
    assert_eq!(diagnostics, "");
    assert_eq!(heads(statements[0].children()), ["weight 1"]);
}

#[test]
fn quoted_strings_keep_spaces_and_join_what_touches_them() {
    let (statements, _) = read("a 'abcd\" efg h jkl \"mnop'\nb abcd \"efg h jkl\" mnop\nc \"\" x\n");
    assert_eq!(statements[0].args, ["abcd\" efg h jkl \"mnop"]);
    assert_eq!(statements[1].args, ["abcd", "efg h jkl", "mnop"]);
    assert_eq!(statements[2].args, ["", "x"]);
}

#[test]
fn quoted_strings_read_escapes() {
    let (statements, _) = read(r#"a "x\ty\n" "\x41\102\\\"" "{ }""#);
    assert_eq!(statements[0].args, ["x\ty\n", "AB\\\"", "{ }"]);
}

#[test]
fn an_unterminated_quote_ends_with_its_line() {
    let (statements, diagnostics) = read("notify_up \"/bin/up arg\nweight 2\n");
    assert_eq!(diagnostics, "k.conf:1: unterminated quoted string: no closing \" on this line; read up to its end");
    assert_eq!(heads(&statements), ["notify_up \"/bin/up arg\"", "weight 2"]);
}

#[test]
fn an_unterminated_block_is_reported_at_its_opening_line() {
    let (statements, diagnostics) =
        read("virtual_server 198.18.0.10 80 {\n  real_server 198.18.1.2 80 {\n    weight 1\n  }\n");
    assert_eq!(
        diagnostics,
        "k.conf:1: the block of `virtual_server 198.18.0.10 80` is not closed: no `}` before the end of the file; read up to it"
    );
    assert_eq!(heads(statements[0].children()), ["real_server 198.18.1.2 80"]);
}

#[test]
fn every_unclosed_block_is_reported() {
    let (_, diagnostics) = read("a {\n b {\n  c\n");
    assert_eq!(
        diagnostics,
        "k.conf:1: the block of `a` is not closed: no `}` before the end of the file; read up to it\n\
         k.conf:2: the block of `b` is not closed: no `}` before the end of the file; read up to it"
    );
}

#[test]
fn stray_braces_are_reported_and_skipped() {
    let (statements, diagnostics) = read("a\n}\n{\n  b 1\n}\nc\n");
    assert_eq!(
        diagnostics,
        // `{` on line 3 follows `a` across a line that holds only `}`: it is not a's block.
        "k.conf:2: `}` closes no block: ignored\nk.conf:3: `{` with no keyword before it: its block is skipped"
    );
    assert_eq!(heads(&statements), ["a", "c"]);
}

#[test]
fn windows_line_ends_and_tabs_are_whitespace() {
    let (statements, diagnostics) = read("virtual_server\t198.18.0.10 80 {\r\n\tweight 1\r\n}\r\n");
    assert_eq!(diagnostics, "");
    assert_eq!(heads(&statements), ["virtual_server 198.18.0.10 80"]);
    assert_eq!(heads(statements[0].children()), ["weight 1"]);
}

#[test]
fn deep_nesting_stops_reading_instead_of_overflowing() {
    let text = "a {\n".repeat(10_000);
    let (_, diagnostics) = read(&text);
    assert!(diagnostics.contains("blocks nested more than 64 deep"), "{diagnostics}");
}
