//! keepalived's config grammar, read into a tree of `Statement`s; no meaning is given here.
//!
//! A statement is a keyword and its values on one line, optionally followed by a block
//! `{ ... }` of statements whose `{` is on the same line or on a later one. Comments start
//! with `#` or `!` anywhere outside quotes and run to the end of the line. A value may be
//! quoted with `"` or `'` (quotes removed, whitespace inside kept, escapes as keepalived reads
//! them); quoted and bare parts written together make one value. `{` and `}` outside quotes
//! always stand alone. What cannot be read (an unclosed block, a stray brace, an unterminated
//! quote) is reported at its line and reading goes on as keepalived would guess.

use super::diagnostic::Report;

/// One keyword line with its values and, for a block keyword, its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// 1-based line of the keyword.
    pub line: usize,
    pub keyword: String,
    pub args: Vec<String>,
    /// The statements between `{` and `}`; `None` when the keyword has no block.
    pub block: Option<Vec<Statement>>,
}

impl Statement {
    /// The keyword and its values as written, for messages: `virtual_server 198.18.0.10 80`.
    /// Values that hold spaces (or nothing) are shown in double quotes.
    pub fn head(&self) -> String {
        let mut head = self.keyword.clone();
        for arg in &self.args {
            head.push(' ');
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                head.push_str(&format!("{arg:?}"));
            } else {
                head.push_str(arg);
            }
        }
        head
    }

    /// The statements of its block; none when it has no block.
    pub fn children(&self) -> &[Statement] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Blocks nested deeper than this are not read (keepalived's own stop well before).
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Open,
    Close,
    EndOfLine,
}

/// The statements of a whole file; problems of syntax go to `report`.
pub fn parse(text: &str, report: &mut Report) -> Vec<Statement> {
    let tokens = tokenize(text, report);
    let mut parser = Parser { tokens, at: 0 };
    parser.block(report, None, 0)
}

/// Tokens with their 1-based line.
fn tokenize(text: &str, report: &mut Report) -> Vec<(Token, usize)> {
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        tokenize_line(line, number, report, &mut tokens);
        tokens.push((Token::EndOfLine, number));
    }
    tokens
}

fn tokenize_line(line: &str, number: usize, report: &mut Report, tokens: &mut Vec<(Token, usize)>) {
    let mut word = String::new();
    // A word has started even if it is still empty: `""` is a value.
    let mut started = false;
    let mut chars = line.chars().peekable();
    let end_word = |word: &mut String, started: &mut bool, tokens: &mut Vec<(Token, usize)>| {
        if *started {
            tokens.push((Token::Word(std::mem::take(word)), number));
            *started = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            '{' | '}' => {
                end_word(&mut word, &mut started, tokens);
                tokens.push((if c == '{' { Token::Open } else { Token::Close }, number));
            }
            '"' | '\'' => {
                started = true;
                if !quoted(c, &mut chars, &mut word) {
                    report.error(
                        number,
                        format!("unterminated quoted string: no closing {c} on this line; read up to its end"),
                    );
                }
            }
            c if c.is_whitespace() => end_word(&mut word, &mut started, tokens),
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    end_word(&mut word, &mut started, tokens);
}

/// Reads a quoted part after its opening `quote` into `word`; false when the line ends first.
fn quoted(quote: char, chars: &mut std::iter::Peekable<std::str::Chars>, word: &mut String) -> bool {
    while let Some(c) = chars.next() {
        match c {
            c if c == quote => return true,
            '\\' => match chars.next() {
                Some(escaped) => escape(escaped, chars, word),
                None => word.push('\\'),
            },
            c => word.push(c),
        }
    }
    false
}

/// keepalived's escapes in quoted strings: `\n`, `\t`, `\xHH`, `\NNN` (octal), `\cC`, ...;
/// a backslash before any other character stands for that character.
fn escape(c: char, chars: &mut std::iter::Peekable<std::str::Chars>, word: &mut String) {
    let simple = match c {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'E' => Some('\u{1b}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        _ => None,
    };
    if let Some(s) = simple {
        word.push(s);
        return;
    }
    let mut number = |radix: u32, most: usize, first: Option<char>| {
        let mut value = first.and_then(|d| d.to_digit(radix)).unwrap_or(0);
        for _ in 0..most {
            match chars.peek().and_then(|d| d.to_digit(radix)) {
                Some(digit) => {
                    value = value * radix + digit;
                    chars.next();
                }
                None => break,
            }
        }
        char::from_u32(value & 0xff).unwrap_or('\u{fffd}')
    };
    match c {
        'x' => word.push(number(16, 2, None)),
        '0'..='7' => word.push(number(8, 2, Some(c))),
        'c' => match chars.next() {
            Some(control) => word.push(char::from_u32(u32::from(control) & 0x1f).unwrap_or(control)),
            None => word.push('c'),
        },
        other => word.push(other),
    }
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(token, _)| token)
    }

    fn line(&self) -> usize {
        self.tokens.get(self.at).or(self.tokens.last()).map_or(1, |&(_, line)| line)
    }

    /// The statements up to the `}` that closes `opener` (its line and head), or to the end
    /// of the file for the top level.
    fn block(&mut self, report: &mut Report, opener: Option<(usize, &str)>, depth: usize) -> Vec<Statement> {
        let mut statements = Vec::new();
        loop {
            let line = self.line();
            match self.peek() {
                None => {
                    if let Some((open_line, head)) = opener {
                        report.error(
                            open_line,
                            format!("the block of `{head}` is not closed: no `}}` before the end of the file; read up to it"),
                        );
                    }
                    return statements;
                }
                Some(Token::EndOfLine) => self.at += 1,
                Some(Token::Close) => {
                    self.at += 1;
                    if opener.is_some() {
                        return statements;
                    }
                    report.error(line, "`}` closes no block: ignored");
                }
                Some(Token::Open) => {
                    self.at += 1;
                    report.error(line, "`{` with no keyword before it: its block is skipped");
                    self.nested(report, line, "{", depth);
                }
                Some(Token::Word(_)) => statements.push(self.statement(report, depth)),
            }
        }
    }

    fn statement(&mut self, report: &mut Report, depth: usize) -> Statement {
        let line = self.line();
        let mut words = Vec::new();
        while let Some(Token::Word(word)) = self.peek() {
            words.push(word.clone());
            self.at += 1;
        }
        let keyword = words.remove(0);
        let mut statement = Statement { line, keyword, args: words, block: None };
        // `{` on this line or, after line ends only, on a later one.
        let mut next = self.at;
        while matches!(self.tokens.get(next), Some((Token::EndOfLine, _))) {
            next += 1;
        }
        if matches!(self.tokens.get(next), Some((Token::Open, _))) {
            self.at = next + 1;
            let head = statement.head();
            statement.block = Some(self.nested(report, line, &head, depth));
        }
        statement
    }

    fn nested(&mut self, report: &mut Report, line: usize, head: &str, depth: usize) -> Vec<Statement> {
        if depth + 1 >= MAX_DEPTH {
            report.error(line, format!("blocks nested more than {MAX_DEPTH} deep: the rest of the file is not read"));
            self.at = self.tokens.len();
            return Vec::new();
        }
        self.block(report, Some((line, head)), depth + 1)
    }
}

#[cfg(test)]
mod tests;
