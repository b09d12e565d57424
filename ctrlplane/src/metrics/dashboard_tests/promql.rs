//! A small PromQL reader for the dashboard test: tokens, then a reader that follows which labels
//! a query's series carry through selectors, functions, aggregations and binary operators, so
//! that a label used where the series no longer has it (or never had it) is caught.

use std::collections::BTreeSet;

use super::super::contract_tests::Families;

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
pub(super) fn query_problems(query: &str, families: &Families) -> Vec<String> {
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
pub(super) fn sluice_names(query: &str) -> BTreeSet<String> {
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
