//! The Grafana dashboard, `conf/grafana-dashboard.json`, queries only what the exposition has:
//! every `sluice_*` name in the PromQL of a panel, a template variable or an annotation is a
//! family `render` emits for the full sample of `contract_tests`, and every label a query names
//! for a Sluice metric (in a matcher, `by`/`without`, `on`/`ignoring`, `group_left`/`group_right`,
//! `label_replace`, `label_values`) is one of that family's labels or one Prometheus adds when
//! it scrapes (`instance`, `job`). It is also an importable dashboard: a title, a uid, a schema
//! version, every panel with a query, every query on the dashboard's Prometheus data source
//! variable, and no Grafana variable used that it does not define.
//!
//! Labels are followed through the query by a small PromQL reader: an aggregation's output has
//! only its `by` labels, so `sum by (instance) (rate(...))` then grouped `by (interface)` is
//! caught, as is a label of another family.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::contract_tests::{exposed, full_sample, Families};
use super::render;

const DASHBOARD: &str = include_str!("../../../conf/grafana-dashboard.json");

/// Labels Prometheus gives every series it scrapes.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// The names a query may read, each with the labels it may be filtered and grouped by: the
/// exposed families with the scrape's labels; a histogram only through its `_bucket` (with
/// `le`), `_sum` and `_count` series, a summary through itself (with `quantile`), `_sum` and
/// `_count`.
fn queryable(families: &Families, types: &BTreeMap<String, String>) -> Families {
    let mut names = Families::new();
    for (name, labels) in families {
        let mut labels = labels.clone();
        labels.extend(TARGET_LABELS.map(str::to_owned));
        let with = |extra: &str| {
            let mut labels = labels.clone();
            labels.insert(extra.to_owned());
            labels
        };
        match types.get(name).map(String::as_str) {
            Some("histogram") => {
                names.insert(format!("{name}_bucket"), with("le"));
            }
            Some("summary") => {
                names.insert(name.clone(), with("quantile"));
            }
            _ => {
                names.insert(name.clone(), labels);
                continue;
            }
        }
        names.insert(format!("{name}_sum"), labels.clone());
        names.insert(format!("{name}_count"), labels);
    }
    names
}

/// Family types from an exposition's `# TYPE` lines.
fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// What the dashboard may query: the full sample's exposition.
fn sluice_families() -> Families {
    let text = render(&full_sample());
    queryable(&exposed(&text), &types(&text))
}

// ---------------------------------------------------------------------------------------------
// PromQL, read as far as labels go.

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    /// A number, a duration, or a Grafana variable standing for one.
    Num,
    /// `[...]`: a range or a subquery's range and step.
    Range,
    Op(&'static str),
    Open(char),
    Close(char),
    Comma,
}

const OPERATORS: [&str; 16] = ["==", "!=", "<=", ">=", "=~", "!~", "+", "-", "*", "/", "%", "^", "<", ">", "=", "@"];

fn tokens(query: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |i: &mut usize, ok: &dyn Fn(char) -> bool| {
        let start = *i;
        while *i < chars.len() && ok(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '#' => i = chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |n| i + n),
            '"' | '\'' | '`' => {
                let mut value = String::new();
                i += 1;
                loop {
                    let Some(&next) = chars.get(i) else { return Err(format!("unterminated string in `{query}`")) };
                    i += 1;
                    if next == c {
                        break;
                    }
                    if next == '\\' && c != '`' {
                        value.extend(chars.get(i));
                        i += 1;
                    } else {
                        value.push(next);
                    }
                }
                out.push(Token::Str(value));
            }
            '[' => {
                let end = chars[i..].iter().position(|&c| c == ']').ok_or(format!("unclosed `[` in `{query}`"))?;
                i += end + 1;
                out.push(Token::Range);
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    word(&mut i, &|c| c != '}');
                    i += 1;
                } else {
                    word(&mut i, &|c| c.is_ascii_alphanumeric() || c == '_');
                }
                out.push(Token::Num);
            }
            '(' | '{' | ')' | '}' | ',' => {
                out.push(match c {
                    '(' | '{' => Token::Open(c),
                    ')' | '}' => Token::Close(c),
                    _ => Token::Comma,
                });
                i += 1;
            }
            _ if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                word(&mut i, &|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
                out.push(Token::Num);
            }
            _ if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                out.push(Token::Ident(word(&mut i, &|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')));
            }
            _ => {
                let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
                let op = OPERATORS.iter().find(|op| rest.starts_with(**op));
                let op = op.ok_or(format!("unexpected `{c}` in `{query}`"))?;
                i += op.len();
                out.push(Token::Op(op));
            }
        }
    }
    Ok(out)
}

/// What an expression yields. A vector carries the labels its series may have (`None` when not
/// known: a metric that is not Sluice's) and the Sluice metrics it was read from.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Scalar,
    Str(String),
    Vector { labels: Option<BTreeSet<String>>, metrics: BTreeSet<String> },
}

impl Kind {
    fn vector(labels: Option<BTreeSet<String>>) -> Kind {
        Kind::Vector { labels, metrics: BTreeSet::new() }
    }
}

/// PromQL's aggregation operators.
const AGGREGATIONS: &str =
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio";

/// Functions whose result has the labels of their (first) vector argument.
const KEEPING_LABELS: &str = "abs ceil changes clamp clamp_max clamp_min day_of_month day_of_week day_of_year \
    days_in_month delta deriv double_exponential_smoothing exp floor holt_winters hour idelta increase irate ln log10 \
    log2 minute month predict_linear rate resets round sgn sort sort_by_label sort_by_label_desc sort_desc sqrt \
    timestamp year avg_over_time count_over_time last_over_time mad_over_time max_over_time min_over_time \
    present_over_time quantile_over_time stddev_over_time stdvar_over_time sum_over_time";

/// A reader of one query: it checks each label named for a Sluice metric against `families`,
/// writing what it finds wrong into `problems`.
struct Reader<'a> {
    tokens: Vec<Token>,
    at: usize,
    families: &'a Families,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w == word)
    }

    fn next(&mut self) -> Result<Token, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("the query ends too soon")?;
        self.at += 1;
        Ok(token)
    }

    fn expect(&mut self, token: Token) -> Result<(), String> {
        let found = self.next()?;
        if found == token {
            Ok(())
        } else {
            Err(format!("expected {token:?}, found {found:?}"))
        }
    }

    /// `label` is one of `labels` (a vector read from `metrics`), or a problem is written.
    fn check_label(&mut self, label: &str, labels: &Option<BTreeSet<String>>, metrics: &BTreeSet<String>, what: &str) {
        let Some(labels) = labels else { return };
        if !labels.contains(label) {
            let metrics = metrics.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
            let labels = labels.iter().cloned().collect::<Vec<_>>().join(",");
            self.problems.push(format!("{what}: label `{label}` is not one of {metrics}'s labels here {{{labels}}}"));
        }
    }

    /// A whole query.
    fn query(&mut self) -> Result<Kind, String> {
        let kind = self.expr(0)?;
        match self.peek() {
            None => Ok(kind),
            Some(token) => Err(format!("unexpected {token:?}")),
        }
    }

    fn binary_op(&self) -> Option<(u8, String)> {
        let (precedence, op) = match self.peek()? {
            Token::Ident(w) if w == "or" => (1, w.clone()),
            Token::Ident(w) if w == "and" || w == "unless" => (2, w.clone()),
            Token::Op(op @ ("==" | "!=" | "<" | ">" | "<=" | ">=")) => (3, op.to_string()),
            Token::Op(op @ ("+" | "-")) => (4, op.to_string()),
            Token::Op(op @ ("*" | "/" | "%")) => (5, op.to_string()),
            Token::Ident(w) if w == "atan2" => (5, w.clone()),
            Token::Op("^") => (6, "^".to_owned()),
            _ => return None,
        };
        Some((precedence, op))
    }

    fn expr(&mut self, min_precedence: u8) -> Result<Kind, String> {
        let mut left = self.unary()?;
        while let Some((precedence, op)) = self.binary_op() {
            if precedence < min_precedence {
                break;
            }
            self.at += 1;
            if self.peek_ident("bool") {
                self.at += 1;
            }
            let mut matching = None;
            if self.peek_ident("on") || self.peek_ident("ignoring") {
                let on = self.peek_ident("on");
                self.at += 1;
                matching = Some((on, self.label_list()?));
            }
            let mut group = None;
            if self.peek_ident("group_left") || self.peek_ident("group_right") {
                let left = self.peek_ident("group_left");
                self.at += 1;
                let labels = if self.peek() == Some(&Token::Open('(')) { self.label_list()? } else { Vec::new() };
                group = Some((left, labels));
            }
            // `^` binds to the right, the others to the left.
            let right = self.expr(if op == "^" { precedence } else { precedence + 1 })?;
            left = self.binary(&op, left, right, matching, group);
        }
        Ok(left)
    }

    fn binary(
        &mut self,
        op: &str,
        left: Kind,
        right: Kind,
        matching: Option<(bool, Vec<String>)>,
        group: Option<(bool, Vec<String>)>,
    ) -> Kind {
        let (
            Kind::Vector { labels: left_labels, metrics: left_metrics },
            Kind::Vector { labels: right_labels, metrics: right_metrics },
        ) = (&left, &right)
        else {
            return if let Kind::Scalar | Kind::Str(_) = left { right } else { left };
        };
        let metrics: BTreeSet<String> = left_metrics.union(right_metrics).cloned().collect();
        let both = match (left_labels, right_labels) {
            (Some(l), Some(r)) => Some(l.union(r).cloned().collect::<BTreeSet<String>>()),
            _ => None,
        };
        if let Some((on, labels)) = &matching {
            for label in labels {
                if *on {
                    self.check_label(label, left_labels, left_metrics, &format!("`on ({label})`, left of `{op}`"));
                    self.check_label(label, right_labels, right_metrics, &format!("`on ({label})`, right of `{op}`"));
                } else {
                    self.check_label(label, &both, &metrics, &format!("`ignoring ({label})` of `{op}`"));
                }
            }
        }
        let labels = match (op, &group, &matching) {
            ("or", _, _) => both,
            ("and" | "unless", _, _) => left_labels.clone(),
            (_, Some((left_side, extra)), _) => {
                let (kept, other, other_metrics) = if *left_side {
                    (left_labels, right_labels, right_metrics)
                } else {
                    (right_labels, left_labels, left_metrics)
                };
                for label in extra {
                    let what = format!("`group_{} ({label})`", if *left_side { "left" } else { "right" });
                    self.check_label(label, other, other_metrics, &what);
                }
                kept.clone().map(|kept| kept.into_iter().chain(extra.iter().cloned()).collect())
            }
            (_, None, Some((true, on))) => Some(on.iter().cloned().collect()),
            (_, None, Some((false, ignoring))) => {
                left_labels.clone().map(|labels| labels.into_iter().filter(|l| !ignoring.contains(l)).collect())
            }
            (_, None, None) => left_labels.clone(),
        };
        Kind::Vector { labels, metrics }
    }

    fn unary(&mut self) -> Result<Kind, String> {
        if let Some(Token::Op("-" | "+")) = self.peek() {
            self.at += 1;
            return self.unary();
        }
        let kind = self.primary()?;
        // Ranges, subqueries, `offset` and `@` change no label.
        loop {
            match self.peek() {
                Some(Token::Range) => self.at += 1,
                Some(Token::Ident(w)) if w == "offset" => {
                    self.at += 1;
                    if let Some(Token::Op("-")) = self.peek() {
                        self.at += 1;
                    }
                    self.expect(Token::Num)?;
                }
                Some(Token::Op("@")) => {
                    self.at += 1;
                    if let Token::Ident(_) = self.next()? {
                        self.expect(Token::Open('('))?;
                        self.expect(Token::Close(')'))?;
                    }
                }
                _ => break,
            }
        }
        Ok(kind)
    }

    fn primary(&mut self) -> Result<Kind, String> {
        match self.next()? {
            Token::Num => Ok(Kind::Scalar),
            Token::Str(s) => Ok(Kind::Str(s)),
            Token::Open('(') => {
                let kind = self.expr(0)?;
                self.expect(Token::Close(')'))?;
                Ok(kind)
            }
            Token::Open('{') => {
                self.at -= 1;
                self.selector(None)
            }
            Token::Ident(name) if AGGREGATIONS.split(' ').any(|a| a == name) && self.aggregation_follows() => {
                self.aggregation(&name)
            }
            Token::Ident(name) if self.peek() == Some(&Token::Open('(')) => self.function(&name),
            Token::Ident(name) => self.selector(Some(name)),
            token => Err(format!("unexpected {token:?}")),
        }
    }

    fn aggregation_follows(&self) -> bool {
        self.peek() == Some(&Token::Open('(')) || self.peek_ident("by") || self.peek_ident("without")
    }

    /// `(a, b)`.
    fn label_list(&mut self) -> Result<Vec<String>, String> {
        self.expect(Token::Open('('))?;
        let mut labels = Vec::new();
        loop {
            match self.next()? {
                Token::Close(')') => return Ok(labels),
                Token::Ident(label) | Token::Str(label) => labels.push(label),
                Token::Comma => {}
                token => return Err(format!("unexpected {token:?} in a label list")),
            }
        }
    }

    /// `(expr, expr)`.
    fn arguments(&mut self) -> Result<Vec<Kind>, String> {
        self.expect(Token::Open('('))?;
        let mut args = Vec::new();
        if self.peek() == Some(&Token::Close(')')) {
            self.at += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr(0)?);
            match self.next()? {
                Token::Comma if self.peek() == Some(&Token::Close(')')) => {
                    self.at += 1;
                    return Ok(args);
                }
                Token::Comma => {}
                Token::Close(')') => return Ok(args),
                token => return Err(format!("unexpected {token:?} in arguments")),
            }
        }
    }

    fn grouping(&mut self) -> Result<Option<(bool, Vec<String>)>, String> {
        if self.peek_ident("by") || self.peek_ident("without") {
            let by = self.peek_ident("by");
            self.at += 1;
            return Ok(Some((by, self.label_list()?)));
        }
        Ok(None)
    }

    fn aggregation(&mut self, name: &str) -> Result<Kind, String> {
        let before = self.grouping()?;
        let mut args = self.arguments()?;
        let after = self.grouping()?;
        let grouping = before.or(after);
        // The vector is the last argument, after the parameter of `topk`, `count_values`...
        let input = args.pop();
        let Some(Kind::Vector { labels, metrics }) = input else {
            return Err(format!("`{name}` over no vector"));
        };
        let mut output = match &grouping {
            Some((by, list)) => {
                let clause = if *by { "by" } else { "without" };
                for label in list {
                    self.check_label(label, &labels, &metrics, &format!("`{name} {clause} ({label})`"));
                }
                match (by, &labels) {
                    (true, _) => Some(list.iter().cloned().collect()),
                    (false, Some(labels)) => Some(labels.iter().filter(|l| !list.contains(l)).cloned().collect()),
                    (false, None) => None,
                }
            }
            None => Some(BTreeSet::new()),
        };
        if ["bottomk", "topk", "limitk", "limit_ratio"].contains(&name) {
            output = labels;
        }
        if let (Some(output), Some(Kind::Str(label))) = (&mut output, args.first()) {
            if name == "count_values" {
                output.insert(label.clone());
            }
        }
        Ok(Kind::Vector { labels: output, metrics })
    }

    fn function(&mut self, name: &str) -> Result<Kind, String> {
        let args = self.arguments()?;
        let first_vector = || args.iter().find(|a| matches!(a, Kind::Vector { .. })).cloned();
        match name {
            "time" | "pi" | "scalar" => Ok(Kind::Scalar),
            "vector" => Ok(Kind::vector(Some(BTreeSet::new()))),
            "absent" | "absent_over_time" => Ok(Kind::vector(None)),
            "label_replace" | "label_join" => {
                let Some(Kind::Vector { labels, metrics }) = args.first().cloned() else {
                    return Err(format!("`{name}` over no vector"));
                };
                let strings: Vec<&str> =
                    args.iter().filter_map(|a| if let Kind::Str(s) = a { Some(s.as_str()) } else { None }).collect();
                // label_replace(v, dst, replacement, src, regex); label_join(v, dst, separator, src...)
                let sources = if name == "label_replace" { strings.get(2..3) } else { strings.get(2..) };
                for source in sources.unwrap_or_default().iter().filter(|s| !s.is_empty()) {
                    self.check_label(source, &labels, &metrics, &format!("`{name}` source"));
                }
                let labels = labels.map(|mut labels| {
                    labels.extend(strings.first().map(|dst| dst.to_string()));
                    labels
                });
                Ok(Kind::Vector { labels, metrics })
            }
            "histogram_quantile" => {
                let Some(Kind::Vector { mut labels, metrics }) = first_vector() else {
                    return Err(format!("`{name}` over no vector"));
                };
                self.check_label("le", &labels, &metrics, "`histogram_quantile`");
                if let Some(labels) = &mut labels {
                    labels.remove("le");
                }
                Ok(Kind::Vector { labels, metrics })
            }
            _ if KEEPING_LABELS.split_whitespace().any(|f| f == name) => {
                first_vector().ok_or(format!("`{name}` over no vector"))
            }
            _ => Err(format!("function `{name}` is unknown to this test: add it to KEEPING_LABELS or to `function`")),
        }
    }

    /// `name{label="value", ...}`.
    fn selector(&mut self, name: Option<String>) -> Result<Kind, String> {
        let (labels, metrics) = match name.as_deref().map(|name| (name, self.families.get(name))) {
            Some((name, Some(labels))) => (Some(labels.clone()), BTreeSet::from([name.to_owned()])),
            // Not a Sluice family (another exporter's, or a wrong name, which the names check
            // reports): its labels are not known.
            _ => (None, BTreeSet::new()),
        };
        if self.peek() == Some(&Token::Open('{')) {
            self.at += 1;
            loop {
                match self.next()? {
                    Token::Close('}') => break,
                    Token::Comma => {}
                    Token::Ident(label) | Token::Str(label) => {
                        let Token::Op("=" | "!=" | "=~" | "!~") = self.next()? else {
                            return Err(format!("no matcher after `{label}`"));
                        };
                        let Token::Str(_) = self.next()? else { return Err(format!("no value for `{label}`")) };
                        if label != "__name__" {
                            self.check_label(&label, &labels, &metrics, &format!("matcher `{label}`"));
                        }
                    }
                    token => return Err(format!("unexpected {token:?} in a selector")),
                }
            }
        }
        Ok(Kind::Vector { labels, metrics })
    }
}

/// The problems of one PromQL query's labels.
fn query_problems(query: &str, families: &Families) -> Vec<String> {
    let unreadable = |e: String| vec![format!("cannot read `{query}`: {e}")];
    let tokens = match tokens(query) {
        Ok(tokens) => tokens,
        Err(e) => return unreadable(e),
    };
    let mut reader = Reader { tokens, at: 0, families, problems: Vec::new() };
    match reader.query() {
        Ok(_) => reader.problems,
        Err(e) => unreadable(e),
    }
}

/// The `sluice_*` metric names a query writes: as names, and as the value of a `__name__`
/// matcher (label values such as `job="sluice_a"` are not names). Nothing for a query that
/// cannot be read (the reader says so).
fn sluice_names(query: &str) -> BTreeSet<String> {
    let tokens = tokens(query).unwrap_or_default();
    let name_matcher = |i: usize| i >= 2 && tokens[i - 2] == Token::Ident("__name__".into());
    let plain = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let names = tokens.iter().enumerate().filter_map(|(i, token)| match token {
        Token::Ident(name) => Some(name),
        Token::Str(value) if name_matcher(i) && plain(value) => Some(value),
        _ => None,
    });
    names.filter(|name| name.starts_with("sluice_")).cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// The dashboard.

/// Every PromQL query of the dashboard, each with where it is: panel targets (rows' nested
/// panels included), template variables, annotations.
fn queries(dashboard: &Value, problems: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    let datasource_variable = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        .and_then(|v| v["name"].as_str());
    let Some(datasource_variable) = datasource_variable else {
        problems.push("no template variable of type `datasource` for Prometheus".into());
        return out;
    };
    let datasource = format!("${{{datasource_variable}}}");
    let on_variable = |value: &Value| value.get("datasource").is_none_or(|ds| ds["uid"] == datasource.as_str());

    let mut panels: Vec<(String, &Value)> = Vec::new();
    let mut row = String::from("(top)");
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        if panel["type"] == "row" {
            row = panel["title"].as_str().unwrap_or("?").to_owned();
            for nested in panel["panels"].as_array().into_iter().flatten() {
                panels.push((row.clone(), nested));
            }
        } else {
            panels.push((row.clone(), panel));
        }
    }
    for (row, panel) in panels {
        let title = panel["title"].as_str().unwrap_or("");
        let place = format!("row \"{row}\", panel \"{title}\"");
        if title.is_empty() {
            problems.push(format!("{place}: no title"));
        }
        if !ids.insert(panel["id"].to_string()) {
            problems.push(format!("{place}: id {} is used twice", panel["id"]));
        }
        if !on_variable(panel) || panel.get("datasource").is_none() {
            problems.push(format!("{place}: the data source is not {datasource}"));
        }
        let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        if !targets.iter().any(|t| t["expr"].as_str().is_some_and(|e| !e.trim().is_empty())) {
            problems.push(format!("{place}: no target with a query"));
        }
        for target in targets {
            let refid = target["refId"].as_str().unwrap_or("?");
            if !on_variable(target) {
                problems.push(format!("{place}, target {refid}: the data source is not {datasource}"));
            }
            if let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                out.push((format!("{place}, target {refid}"), expr.to_owned()));
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] != "query" {
            continue;
        }
        let name = variable["name"].as_str().unwrap_or("?");
        let place = format!("variable \"{name}\"");
        if !on_variable(variable) {
            problems.push(format!("{place}: the data source is not {datasource}"));
        }
        let query = &variable["query"];
        let query = query.as_str().or(query["query"].as_str()).unwrap_or("");
        out.push((place, query.to_owned()));
    }
    for annotation in dashboard["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = annotation["expr"].as_str() {
            out.push((format!("annotation \"{}\"", annotation["name"].as_str().unwrap_or("?")), expr.to_owned()));
        }
    }
    out
}

/// A template variable's query as PromQL: `label_values(selector, label)` checks `label`
/// against the selector, `query_result(q)` is `q`; the others name no metric.
fn variable_problems(query: &str, families: &Families) -> Vec<String> {
    let query = query.trim();
    if let Some(args) = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')) {
        let Some((selector, label)) = args.rsplit_once(',') else { return Vec::new() };
        return query_problems(&format!("count by ({}) ({selector})", label.trim()), families);
    }
    if let Some(inner) = query.strip_prefix("query_result(").and_then(|q| q.strip_suffix(')')) {
        return query_problems(inner, families);
    }
    Vec::new()
}

/// Grafana variables a query uses (`$name`, `${name}`, `${name:format}`).
fn variables_used(query: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for part in query.split('$').skip(1) {
        let part = part.strip_prefix('{').unwrap_or(part);
        let end = part.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(part.len());
        // `$1` is a regular expression's group (label_replace), not a variable.
        if part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            used.insert(part[..end].to_owned());
        }
    }
    used
}

/// Everything wrong with `dashboard` against `families`, each problem naming where it is.
fn dashboard_problems(dashboard: &Value, families: &Families) -> Vec<String> {
    let mut problems = Vec::new();
    for key in ["title", "uid"] {
        if dashboard[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("the dashboard has no `{key}`"));
        }
    }
    if dashboard["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        problems.push(format!(
            "`schemaVersion` {} is not that of a recent Grafana (36 or later)",
            dashboard["schemaVersion"]
        ));
    }
    if dashboard["panels"].as_array().is_none_or(Vec::is_empty) {
        problems.push("the dashboard has no `panels`".into());
    }
    let defined: BTreeSet<&str> =
        dashboard["templating"]["list"].as_array().into_iter().flatten().filter_map(|v| v["name"].as_str()).collect();
    for (place, query) in queries(dashboard, &mut problems) {
        for name in sluice_names(&query) {
            if !families.contains_key(&name) {
                problems.push(format!("{place}: `{name}` is not an exposed metric"));
            }
        }
        for variable in variables_used(&query) {
            if !variable.starts_with("__") && !defined.contains(variable.as_str()) {
                problems.push(format!("{place}: variable `${variable}` is not defined"));
            }
        }
        let found = if place.starts_with("variable ") {
            variable_problems(&query, families)
        } else {
            query_problems(&query, families)
        };
        problems.extend(found.into_iter().map(|p| format!("{place}: {p}")));
    }
    problems
}

fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("conf/grafana-dashboard.json is JSON")
}

#[test]
fn dashboard_queries_only_exposed_metrics() {
    let families = sluice_families();
    let problems = dashboard_problems(&dashboard(), &families);
    assert!(problems.is_empty(), "conf/grafana-dashboard.json:\n{}", problems.join("\n"));
}

/// The dashboard reads most of what Sluice exposes, so a wrong reading would not go unseen
/// for want of queries: at least 30 families and every optional part (cluster, BGP).
#[test]
fn the_dashboard_reads_the_exposition_broadly() {
    let families = sluice_families();
    let mut ignored = Vec::new();
    let read: BTreeSet<String> =
        queries(&dashboard(), &mut ignored).iter().flat_map(|(_, q)| sluice_names(q)).collect();
    assert!(read.len() >= 30, "the dashboard reads only {} families: {read:?}", read.len());
    for needed in ["sluice_cluster_peer_up", "sluice_sync_sessions", "sluice_bgp_neighbor_up", "sluice_route_announced"]
    {
        assert!(read.contains(needed), "the dashboard does not read `{needed}`");
    }
    assert!(read.iter().all(|name| families.contains_key(name)), "see dashboard_queries_only_exposed_metrics");
}

fn families_of(list: &[(&str, &[&str])]) -> Families {
    list.iter().map(|(name, labels)| (name.to_string(), labels.iter().map(|l| l.to_string()).collect())).collect()
}

/// The checks fail on a dashboard that gets a name or a label wrong, naming the panel and the
/// metric.
#[test]
fn a_wrong_name_or_label_is_reported_with_its_panel() {
    let families = queryable(
        &families_of(&[
            ("sluice_port_packets_total", &["interface", "direction"]),
            ("sluice_sessions", &["service", "worker"]),
            ("sluice_latency_seconds", &["service"]),
        ]),
        &BTreeMap::from([("sluice_latency_seconds".to_owned(), "histogram".to_owned())]),
    );
    let dashboard = serde_json::json!({
        "title": "t", "uid": "u", "schemaVersion": 39,
        "templating": {"list": [
            {"name": "ds", "type": "datasource", "query": "prometheus"},
            {"name": "svc", "type": "query", "datasource": {"uid": "${ds}"},
             "query": {"query": "label_values(sluice_sessions{instance=~\"$instance\"}, servic)"}},
        ]},
        "panels": [
            {"type": "row", "title": "Ports", "id": 1},
            {"type": "timeseries", "title": "Good", "id": 2, "datasource": {"uid": "${ds}"}, "targets": [
                {"refId": "A", "expr": "sum by (instance, interface) (rate(sluice_port_packets_total{direction=\"rx\"}[$__rate_interval]))"},
                {"refId": "B", "expr": "histogram_quantile(0.99, sum by (le, service) (rate(sluice_latency_seconds_bucket[5m])))"},
                {"refId": "C", "expr": "sum by (service) (sluice_sessions) / on (service) group_left sum by (service) (sluice_sessions)"},
            ]},
            {"type": "timeseries", "title": "Planted", "id": 3, "datasource": {"uid": "${ds}"}, "targets": [
                {"refId": "A", "expr": "rate(sluice_port_packet_total[5m])"},
                {"refId": "B", "expr": "sum by (service) (rate(sluice_port_packets_total{reason=\"x\"}[5m]))"},
                {"refId": "C", "expr": "sum by (interface) (sum by (instance) (sluice_port_packets_total))"},
                {"refId": "D", "expr": "sluice_latency_seconds_count + sluice_latency_seconds"},
                {"refId": "E", "expr": "sluice_sessions{service=\"$nope\"}"},
            ]},
            {"type": "stat", "title": "Empty", "id": 3, "datasource": {"uid": "prom"}, "targets": [{"refId": "A", "expr": " "}]},
        ],
    });
    let problems = dashboard_problems(&dashboard, &families);
    let expected = [
        "row \"Ports\", panel \"Planted\", target A: `sluice_port_packet_total` is not an exposed metric",
        "row \"Ports\", panel \"Planted\", target B: `sum by (service)`: label `service` is not one of `sluice_port_packets_total`'s labels here {direction,instance,interface,job}",
        "row \"Ports\", panel \"Planted\", target B: matcher `reason`: label `reason` is not one of `sluice_port_packets_total`'s labels here {direction,instance,interface,job}",
        "row \"Ports\", panel \"Planted\", target C: `sum by (interface)`: label `interface` is not one of `sluice_port_packets_total`'s labels here {instance}",
        "row \"Ports\", panel \"Planted\", target D: `sluice_latency_seconds` is not an exposed metric",
        "row \"Ports\", panel \"Planted\", target E: variable `$nope` is not defined",
        "row \"Ports\", panel \"Empty\": id 3 is used twice",
        "row \"Ports\", panel \"Empty\": the data source is not ${ds}",
        "row \"Ports\", panel \"Empty\": no target with a query",
        "variable \"svc\": variable `$instance` is not defined",
        "variable \"svc\": `count by (servic)`: label `servic` is not one of `sluice_sessions`'s labels here {instance,job,service,worker}",
    ];
    for line in expected {
        assert!(problems.iter().any(|p| p == line), "missing:\n{line}\nin {problems:#?}");
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

#[test]
fn the_reader_follows_labels_through_promql() {
    let families = queryable(&families_of(&[("sluice_m", &["a", "b"]), ("sluice_n", &["a", "c"])]), &BTreeMap::new());
    let ok = [
        "sluice_m",
        "-sluice_m offset 5m * 2 ^ 3",
        "count(sluice_m == 0) or vector(0)",
        "sum without (b) (sluice_m) + on (a) group_left (c) sum by (a, c) (sluice_n)",
        "sum by (a) (sluice_m) > bool 0 and sluice_n",
        "topk(3, sluice_m) by (b)",
        "sum(rate(sluice_m[5m:1m])) by (a)",
        "max_over_time(sluice_m[$__range]) / ignoring (b) sluice_n",
        "count_values(\"v\", sluice_m) # a comment",
        "sum by (x) (label_replace(sluice_m, \"x\", \"$1\", \"b\", \"(.*)\"))",
        "sum by (a, instance) (up{job=\"sluice\"})",
        "absent(sluice_m{a=\"1\"})",
        "sluice_m @ end()",
    ];
    for query in ok {
        assert_eq!(query_problems(query, &families), Vec::<String>::new(), "{query}");
    }
    let wrong = [
        ("sum by (c) (sluice_m)", "`sum by (c)`"),
        ("sum without (c) (sluice_m)", "`sum without (c)`"),
        ("sluice_m + on (b) sluice_n", "`on (b)`, right of `+`"),
        ("sluice_m / on (a) group_left (d) sluice_n", "`group_left (d)`"),
        ("sum by (b) (sluice_m + on (a) sluice_n)", "`sum by (b)`"),
        ("label_replace(sluice_m, \"x\", \"$1\", \"c\", \"(.*)\")", "`label_replace` source"),
        ("sum by (b) (topk(1, sum by (a) (sluice_m)))", "`sum by (b)`"),
        ("sluice_m{c=~\".+\"}", "matcher `c`"),
        ("frobnicate(sluice_m)", "function `frobnicate` is unknown"),
    ];
    for (query, problem) in wrong {
        let found = query_problems(query, &families);
        assert!(found.len() == 1 && found[0].contains(problem), "{query}: {found:?}");
    }
    assert_eq!(
        sluice_names("sum(sluice_a_total{job=\"sluice_b\"}) + my_sluice_c + {__name__=\"sluice_d_bucket\"}"),
        BTreeSet::from(["sluice_a_total".into(), "sluice_d_bucket".into()])
    );
}
