//! A thin typed walk over the marked YAML tree: every value carries its
//! position and its field path, so every error can name both. Unknown keys
//! are rejected here, at every level, with a suggestion when one is close.

use super::error::ConfigError;
use super::schema::Obj;
use marked_yaml::types::{MarkedMappingNode, Node};
use std::path::PathBuf;
use std::str::FromStr;

pub(crate) type R<T> = Result<T, ConfigError>;

/// Builds an error at a position; the file is filled in by the caller of the
/// whole decode.
pub(crate) fn error_at(node: &Node, path: &str, message: impl Into<String>) -> ConfigError {
    // A block mapping's own mark sits on its first ':'; its first key is
    // where a reader looks.
    let start = match node {
        Node::Mapping(m) => m.keys().next().and_then(|k| k.span().start()),
        _ => None,
    };
    let (line, column) = start
        .or(node.span().start())
        .map(|m| (m.line(), m.column()))
        .unwrap_or((0, 0));
    ConfigError {
        file: PathBuf::new(),
        line,
        column,
        path: path.to_string(),
        message: message.into(),
    }
}

/// Line of a node, for messages that point back at an earlier definition.
pub(crate) fn line_of(node: &Node) -> usize {
    error_at(node, "", "").line
}

/// The closest of `candidates` to `word`, if close enough to be a typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `a, b or c`.
pub(crate) fn one_of(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// Most characters of the file an error shows: enough to recognise a
/// value, too few to make an error a way to read a file.
pub(crate) const QUOTE_MAX: usize = 40;

/// `s` cut to [`QUOTE_MAX`] characters, the cut marked with `…`.
pub(crate) fn cut(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX - 1) {
        Some((i, _)) if s.chars().count() > QUOTE_MAX => format!("{}…", &s[..i]),
        _ => s.to_string(),
    }
}

/// Text from the file as an error quotes it: in double quotes, cut to
/// [`QUOTE_MAX`] characters (`"abc…"` when cut).
pub(crate) fn quote(s: &str) -> String {
    format!("{:?}", cut(s))
}

/// A value in the tree with its field path.
#[derive(Clone)]
pub(crate) struct Val<'n> {
    pub node: &'n Node,
    pub path: String,
}

impl<'n> Val<'n> {
    pub fn new(node: &'n Node, path: impl Into<String>) -> Self {
        Val {
            node,
            path: path.into(),
        }
    }

    pub fn err(&self, message: impl Into<String>) -> ConfigError {
        error_at(self.node, &self.path, message)
    }

    pub fn line(&self) -> usize {
        line_of(self.node)
    }

    /// An empty value, `~` or `null` (unquoted).
    pub fn is_null(&self) -> bool {
        match self.node {
            Node::Scalar(s) => {
                s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL")
            }
            _ => false,
        }
    }

    fn kind(&self) -> String {
        match self.node {
            Node::Scalar(s) => quote(s.as_str()),
            Node::Mapping(_) => "a mapping".into(),
            Node::Sequence(_) => "a list".into(),
        }
    }

    /// A scalar as text; `expected` completes "expected ..." in the error.
    pub fn str(&self, expected: &str) -> R<&'n str> {
        match self.node {
            Node::Scalar(s) => Ok(s.as_str()),
            _ => Err(self.err(format!(
                "{} is not allowed here, expected {expected}",
                self.kind()
            ))),
        }
    }

    /// A non-empty string.
    pub fn name(&self, expected: &str) -> R<&'n str> {
        let s = self.str(expected)?;
        if s.is_empty() {
            return Err(self.err(format!("empty value, expected {expected}")));
        }
        Ok(s)
    }

    /// A scalar parsed with `FromStr`; the error says `"x" is not <what>, expected <expected>`.
    pub fn parse<T: FromStr>(&self, what: &str, expected: &str) -> R<T> {
        let s = self.str(expected)?;
        s.parse()
            .map_err(|_| self.err(format!("{} is not {what}, expected {expected}", quote(s))))
    }

    /// An integer in `lo..=hi`.
    pub fn int(&self, lo: u64, hi: u64) -> R<u64> {
        let expected = format!("a number from {lo} to {hi}");
        let s = self.str(&expected)?;
        let n: u64 = s
            .parse()
            .map_err(|_| self.err(format!("{} is not a number, expected {expected}", quote(s))))?;
        if n < lo || n > hi {
            return Err(self.err(format!("{n} is out of range, expected {expected}")));
        }
        Ok(n)
    }

    pub fn bool(&self) -> R<bool> {
        match self.str("true or false")? {
            "true" => Ok(true),
            "false" => Ok(false),
            s => Err(self.err(format!(
                "{} is not a boolean, expected true or false",
                quote(s)
            ))),
        }
    }

    /// One of a fixed set of words.
    pub fn word<T: Copy>(&self, choices: &[(&str, T)]) -> R<T> {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let expected = one_of(&names);
        let s = self.str(&expected)?;
        if let Some((_, v)) = choices.iter().find(|(n, _)| *n == s) {
            return Ok(*v);
        }
        let hint = match suggest(s, names.iter().copied()) {
            Some(c) => format!(" (did you mean {c}?)"),
            None => String::new(),
        };
        Err(self.err(format!(
            "{} is not allowed here{hint}, expected {expected}",
            quote(s)
        )))
    }

    /// A mapping whose keys must all be keys of `obj` (the schema's).
    pub fn map(&self, obj: &'static Obj) -> R<Map<'n>> {
        let keys: Vec<&str> = obj.keys().collect();
        let m = match self.node {
            Node::Mapping(m) => m,
            _ => {
                return Err(self.err(format!(
                    "{} is not allowed here, expected a mapping with keys {}",
                    self.kind(),
                    keys.join(", ")
                )))
            }
        };
        for k in m.keys() {
            let name = k.as_str();
            if obj.has(name) {
                continue;
            }
            let path = self.child(&cut(name));
            let key_node = Node::Scalar(k.clone());
            let msg = match suggest(name, keys.iter().copied()) {
                Some(c) => format!("unknown key, did you mean {c}?"),
                None => format!("unknown key, expected one of {}", keys.join(", ")),
            };
            return Err(error_at(&key_node, &path, msg));
        }
        Ok(Map {
            m,
            val: self.clone(),
        })
    }

    /// A list; null is the empty list.
    pub fn seq(&self, expected: &str) -> R<Vec<Val<'n>>> {
        match self.node {
            Node::Sequence(s) => Ok(s
                .iter()
                .enumerate()
                .map(|(i, n)| Val::new(n, format!("{}[{i}]", self.path)))
                .collect()),
            _ if self.is_null() => Ok(Vec::new()),
            _ => Err(self.err(format!(
                "{} is not allowed here, expected {expected}",
                self.kind()
            ))),
        }
    }

    /// A single value or a list of them.
    pub fn one_or_many(&self) -> Vec<Val<'n>> {
        match self.node {
            Node::Sequence(s) => s
                .iter()
                .enumerate()
                .map(|(i, n)| Val::new(n, format!("{}[{i}]", self.path)))
                .collect(),
            _ => vec![self.clone()],
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self.node, Node::Mapping(_))
    }

    pub fn is_seq(&self) -> bool {
        matches!(self.node, Node::Sequence(_))
    }

    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

/// A checked mapping.
pub(crate) struct Map<'n> {
    m: &'n MarkedMappingNode,
    pub val: Val<'n>,
}

impl<'n> Map<'n> {
    /// The value of `key`; an explicit null counts as absent.
    pub fn get(&self, key: &str) -> Option<Val<'n>> {
        let v = Val::new(self.m.get_node(key)?, self.val.child(key));
        (!v.is_null()).then_some(v)
    }

    pub fn require(&self, key: &str, expected: &str) -> R<Val<'n>> {
        self.get(key).ok_or_else(|| {
            self.val
                .err(format!("missing key {key}, expected {key}: {expected}"))
        })
    }

    pub fn err(&self, message: impl Into<String>) -> ConfigError {
        self.val.err(message)
    }
}
