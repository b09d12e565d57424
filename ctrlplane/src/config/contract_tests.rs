//! The config file's contract kept in step with the parser: `conf/example.toml` and the TOML
//! blocks of `docs/interface.md` write every key the parser accepts, table by table, and no
//! key it does not.
//!
//! The parser's own list is read from its refusal of an unknown key: serde, with
//! `deny_unknown_fields`, answers "unknown field `x`, expected one of `a`, `b`" (or "expected
//! `a`" for a table of one key). Every table that `conf/example.toml` has a header for is
//! probed so, by an unknown key written right after the header's first occurrence, and the top
//! level by one written before any header. A table the parser accepts is a key of its parent
//! and must have a header in the example itself, so that it is probed in turn.
//!
//! A key is written when it is set (`key = value`) or shown commented out (`# key = value`):
//! a commented-out example goes stale like any other.

use std::collections::{BTreeMap, BTreeSet};

use super::parse;
use super::test_support::HOST;

const EXAMPLE: &str = include_str!("../../../conf/example.toml");
const INTERFACE_MD: &str = include_str!("../../../docs/interface.md");

/// The unknown key the tables are probed with.
const PROBE: &str = "zz_contract_probe";

/// The keys a TOML text writes, by table: "" for the top level, "service.health" for
/// `[service.health]` (arrays of tables as their tables). A table's sub-tables are among its
/// keys, as the parser has them.
type Keys = BTreeMap<String, BTreeSet<String>>;

/// How a message names a table.
fn table_name(table: &str) -> String {
    if table.is_empty() {
        "the top level".to_owned()
    } else {
        format!("[{table}]")
    }
}

/// The table a header line opens (`[dpdk]`, `[[service.backend]]  # comment`), if it is one.
fn header(line: &str) -> Option<String> {
    let inner = line.trim().strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let (path, _) = inner.split_once(']')?;
    let segments: Vec<&str> = path.split('.').map(str::trim).collect();
    Some(segments.join("."))
}

/// The key a line sets or shows commented out (`key = 1`, `# key = 1`), if it does.
fn key(line: &str) -> Option<String> {
    let line = line.trim();
    let line = line.strip_prefix('#').map_or(line, str::trim_start);
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    // A dotted key (`health.check = "tcp"`) is a key of its first segment's table.
    bare.then(|| key.split('.').next().unwrap_or(key).to_owned())
}

/// The keys `text` writes, table by table.
fn written(text: &str) -> Keys {
    let mut keys = Keys::new();
    keys.entry(String::new()).or_default();
    let mut table = String::new();
    for line in text.lines() {
        if let Some(path) = header(line) {
            // `[service.health]` makes `service` a key of the top level and `health` one of
            // `[service]`.
            let segments: Vec<&str> = path.split('.').collect();
            for (i, segment) in segments.iter().enumerate() {
                keys.entry(segments[..i].join(".")).or_default().insert((*segment).to_owned());
            }
            keys.entry(path.clone()).or_default();
            table = path;
        } else if let Some(key) = key(line) {
            keys.entry(table.clone()).or_default().insert(key);
        }
    }
    keys
}

/// The keys the TOML blocks of `markdown` write, each block read from the top level.
fn written_in_blocks(markdown: &str) -> Keys {
    let mut keys = Keys::new();
    let mut block: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match &mut block {
            None if line.trim() == "```toml" => block = Some(Vec::new()),
            None => {}
            Some(lines) if line.trim() == "```" => {
                for (table, written) in written(&lines.join("\n")) {
                    keys.entry(table).or_default().extend(written);
                }
                block = None;
            }
            Some(lines) => lines.push(line),
        }
    }
    assert!(block.is_none(), "docs/interface.md: a ```toml block is never closed");
    keys
}

/// The keys the parser accepts in `table`, from its refusal of `PROBE` written there in the
/// example.
fn accepted(table: &str) -> BTreeSet<String> {
    let mut lines: Vec<&str> = EXAMPLE.lines().collect();
    let at = if table.is_empty() {
        0
    } else {
        let first = lines.iter().position(|line| header(line).as_deref() == Some(table));
        first.unwrap_or_else(|| panic!("conf/example.toml has no header for {}", table_name(table))) + 1
    };
    let probe = format!("{PROBE} = 0");
    lines.insert(at, &probe);
    let text = lines.join("\n");
    let refused = match parse(&text, "t.toml", &HOST) {
        Ok(_) => panic!("{}: the parser accepted the unknown key `{PROBE}`", table_name(table)),
        Err(diagnostics) => diagnostics.to_string(),
    };
    let expected = refused
        .strip_prefix(&format!("t.toml:{}:", at + 1))
        .and_then(|rest| rest.split_once(&format!(": unknown field `{PROBE}`, expected ")))
        .map(|(_, list)| list);
    let list = expected.unwrap_or_else(|| {
        panic!(
            "{}: the parser did not refuse `{PROBE}` on line {} as an unknown key with the keys it \
             accepts; it said:\n{refused}",
            table_name(table),
            at + 1
        )
    });
    // "one of `a`, `b`" or "`a`": the names are the backquoted parts.
    let names: BTreeSet<String> = list.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    assert!(!names.is_empty(), "{}: no keys in the parser's answer: {refused}", table_name(table));
    names
}

/// Every table the example has a header for, and the top level, with the keys the parser
/// accepts there.
fn parser_keys() -> Keys {
    written(EXAMPLE)
        .keys()
        .filter(|table| table.is_empty() || EXAMPLE.lines().any(|line| header(line).as_deref() == Some(table.as_str())))
        .map(|table| (table.clone(), accepted(table)))
        .collect()
}

/// One line per key written in `keys` but not accepted, or accepted but not written.
fn differences(document: &str, keys: &Keys, parser: &Keys, how_to_add: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (table, accepted) in parser {
        let written = keys.get(table).cloned().unwrap_or_default();
        for missing in accepted.difference(&written) {
            problems.push(format!(
                "{document}, {}: the parser accepts `{missing}` but {document} does not write it ({how_to_add})",
                table_name(table)
            ));
        }
        for unknown in written.difference(accepted) {
            problems.push(format!(
                "{document}, {}: `{unknown}` is written but the parser does not accept it (an unknown key is an \
                 error); it expects one of {accepted:?}",
                table_name(table)
            ));
        }
    }
    // Tables written in no table the parser was probed in: their parent's check names them
    // too, but say where they are.
    for (table, written) in keys {
        if !parser.contains_key(table) && !written.is_empty() {
            problems.push(format!(
                "{document}, {}: a table conf/example.toml has no header for, with keys {written:?}",
                table_name(table)
            ));
        }
    }
    problems
}

#[test]
fn the_example_writes_every_key_the_parser_accepts_and_no_other() {
    let parser = parser_keys();
    // Every table of the example is probed: the top level and at least the nested ones.
    for table in ["", "dpdk", "interface", "service", "service.health", "service.backend", "bgp", "bgp.neighbor"] {
        assert!(parser.contains_key(table), "{} was not probed", table_name(table));
    }
    let problems = differences(
        "conf/example.toml",
        &written(EXAMPLE),
        &parser,
        "set it, or show it commented out, `# key = value`, with its default and range",
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn interface_md_writes_every_key_the_parser_accepts_and_no_other() {
    let problems = differences(
        "docs/interface.md",
        &written_in_blocks(INTERFACE_MD),
        &parser_keys(),
        "write `key = default` in the table's ```toml block, with its range in the comment",
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Every key of the example says, where it is first written, its default or that it is
/// required: in its own comment or the comment lines just above it.
#[test]
fn the_example_gives_every_key_its_default_or_says_it_is_required() {
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    let mut table = String::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(path) = header(line) {
            table = path;
            continue;
        }
        let Some(key) = key(line) else { continue };
        if !seen.insert((table.clone(), key.clone())) {
            continue;
        }
        // The line itself, and the comment lines above it up to a blank line, a header or
        // another key.
        let mut said = line.to_ascii_lowercase();
        for above in lines[..i].iter().rev() {
            let above = above.trim();
            if !above.starts_with('#') || self::key(above).is_some() {
                break;
            }
            said.push_str(&above.to_ascii_lowercase());
        }
        if !said.contains("default") && !said.contains("required") {
            problems.push(format!(
                "conf/example.toml:{}: {} `{key}` says neither its default nor that it is required",
                i + 1,
                table_name(&table)
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
