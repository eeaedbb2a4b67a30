//! Splitting a log message into tokens and masking the variable ones as `<*>`.
//!
//! Words are whitespace-separated. A word whose core (the word without surrounding punctuation) has
//! a variable shape — number, date or time, IPv4/IPv6, hex, UUID, URL, email, path, number with a
//! unit — becomes `<*>` whole. Other words are split at delimiter characters, and each piece that
//! has a digit or is a literal like `true`/`null` becomes `<*>`. Month and weekday names next to
//! numbers are dates, hence variable.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// The variable marker.
pub const WILD: &str = "<*>";
/// An empty value slot (`()`, `""`, `key=` with nothing after); renders as nothing.
pub const EMPTY: &str = "<E>";

const DELIMS: &[char] = &[
    '=', ',', ';', ':', '(', ')', '[', ']', '{', '}', '"', '\'', '|',
];
const STRIP: &[char] = &[
    '(', ')', '[', ']', '{', '}', '<', '>', '"', '\'', ',', ';', ':', '.',
];
const LITERALS: &[&str] = &[
    "true", "false", "null", "none", "nil", "True", "False", "NULL", "None",
];
const MONTHS: &[&str] = &[
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: &[&str] = &[
    "mon",
    "tue",
    "tues",
    "wed",
    "thu",
    "thur",
    "thurs",
    "fri",
    "sat",
    "sun",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// One token and whether whitespace preceded it (needed to render templates back as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token text, `<*>` for a variable.
    pub text: String,
    /// Whitespace came before it in the message.
    pub sp: bool,
}

/// Shapes that make a whole word variable.
static SHAPES: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([
        r"^[-+]?\d+([.,:/\-]\d+)*([eE][-+]?\d+)?$",
        r"^/?\d{1,3}(\.\d{1,3}){3}(:\d+)?$",
        r"^0[xX][0-9a-fA-F]+$",
        r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        r"^[A-Za-z][A-Za-z0-9+.\-]*://\S*$",
        r"^[\w.+\-]+@[\w\-]+(\.[\w\-]+)+$",
        r"^(/[^/\s]*){2,}/?$|^[A-Za-z]:\\",
        r"^[-+]?\d+(\.\d+)?[a-zA-Z%]{1,5}$",
    ])
    .expect("shape patterns compile")
});

/// Shapes that count only when the word also has a digit (long hex, IPv6).
static DIGIT_SHAPES: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([
        r"^[0-9a-fA-F]{8,}$",
        r"^[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}$",
    ])
    .expect("shape patterns compile")
});

static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[-+]?\d+([.,:/\-]\d+)*([eE][-+]?\d+)?$").expect("compiles"));

fn has_digit(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric()))
}

/// Every variable shape needs a digit or one of these characters; checking first spares the regexes
/// for plain words, which are most words.
fn may_be_shape(s: &str) -> bool {
    has_digit(s)
        || s.bytes()
            .any(|b| matches!(b, b'/' | b'@' | b':' | b'\\' | b'-'))
}

fn whole_var(core: &str) -> bool {
    if core.is_empty() || !may_be_shape(core) {
        return false;
    }
    SHAPES.is_match(core) || (has_digit(core) && DIGIT_SHAPES.is_match(core))
}

fn mask_piece(piece: &str) -> &str {
    if piece == WILD || has_digit(piece) || LITERALS.contains(&piece) || whole_var(piece) {
        WILD
    } else {
        piece
    }
}

/// Byte range of a word's core: the word without leading and trailing [`STRIP`] characters.
fn core_range(word: &str) -> (usize, usize) {
    let start = word.len() - word.trim_start_matches(STRIP).len();
    let end = start + word[start..].trim_end_matches(STRIP).len();
    (start, end)
}

fn is_number_word(w: &str) -> bool {
    let (a, b) = core_range(w);
    !w.is_empty() && NUMBER.is_match(&w[a..b])
}

fn is_date_name(w: &str) -> bool {
    let (a, b) = core_range(w);
    if !(3..=9).contains(&(b - a)) || !w[a..b].bytes().all(|c| c.is_ascii_alphabetic()) {
        return false;
    }
    let lower = w[a..b].to_ascii_lowercase();
    MONTHS.contains(&lower.as_str()) || DAYS.contains(&lower.as_str())
}

/// Which words are month or weekday names sitting next to a number (or to another date name
/// followed by a number): parts of a date.
fn date_words(words: &[&str]) -> Vec<bool> {
    let names: Vec<bool> = words.iter().map(|w| is_date_name(w)).collect();
    let n = words.len() as isize;
    (0..words.len())
        .map(|k| {
            names[k]
                && [-1isize, 1, 2].iter().any(|d| {
                    let j = k as isize + d;
                    (0..n).contains(&j)
                        && (is_number_word(words[j as usize])
                            || (names[j as usize]
                                && *d == 1
                                && k + 2 < words.len()
                                && is_number_word(words[k + 2])))
                })
        })
        .collect()
}

fn push(out: &mut Vec<Token>, text: &str, first: &mut bool) {
    out.push(Token {
        text: text.to_string(),
        sp: *first,
    });
    *first = false;
}

/// Splits one word that is not variable as a whole at delimiters and `..` runs.
fn split_word(word: &str, out: &mut Vec<Token>) {
    let mut first = true;
    let mut start = 0;
    let bytes = word.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let dots = if c == b'.' {
            bytes[i..].iter().take_while(|b| **b == b'.').count()
        } else {
            0
        };
        if dots >= 2 {
            if start < i {
                push(out, mask_piece(&word[start..i]), &mut first);
            }
            push(out, &word[i..i + dots], &mut first);
            i += dots;
            start = i;
        } else if c.is_ascii() && DELIMS.contains(&(c as char)) {
            if start < i {
                push(out, mask_piece(&word[start..i]), &mut first);
            }
            push(out, &word[i..i + 1], &mut first);
            i += 1;
            start = i;
        } else {
            i += 1;
        }
    }
    if start < bytes.len() {
        push(out, mask_piece(&word[start..]), &mut first);
    }
}

/// Tokenizes and masks a message.
pub fn tokenize(message: &str) -> Vec<Token> {
    let words: Vec<&str> = message.split_whitespace().collect();
    let dates = date_words(&words);
    let mut out: Vec<Token> = Vec::with_capacity(words.len() * 2);
    for (wi, word) in words.iter().enumerate() {
        let (a, b) = core_range(word);
        let replaced;
        let word: &str = if dates[wi] {
            replaced = format!("{}{WILD}{}", &word[..a], &word[b..]);
            &replaced
        } else {
            word
        };
        let (a, b) = if dates[wi] { core_range(word) } else { (a, b) };
        let core = &word[a..b];
        if core != WILD && whole_var(core) {
            let mut first = true;
            for c in word[..a].chars() {
                push(&mut out, c.encode_utf8(&mut [0; 4]), &mut first);
            }
            push(&mut out, WILD, &mut first);
            for c in word[b..].chars() {
                push(&mut out, c.encode_utf8(&mut [0; 4]), &mut first);
            }
        } else {
            split_word(word, &mut out);
        }
    }
    out.dedup_by(|next, prev| next.text == WILD && prev.text == WILD);
    insert_empty(out)
}

fn closing(open: &str) -> Option<&'static str> {
    match open {
        "(" => Some(")"),
        "[" => Some("]"),
        "{" => Some("}"),
        "\"" => Some("\""),
        "'" => Some("'"),
        _ => None,
    }
}

/// Marks empty value slots with [`EMPTY`], so that a later non-empty value generalizes to `<*>`.
fn insert_empty(tokens: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(tokens.len() + 2);
    let n = tokens.len();
    for k in 0..n {
        let next = tokens.get(k + 1);
        let t = &tokens[k].text;
        let empty_pair = closing(t).is_some_and(|c| next.is_some_and(|nx| nx.text == c && !nx.sp));
        let empty_value = t == "="
            && next.is_none_or(|nx| nx.sp || [",", ";", ")", "]", "}"].contains(&nx.text.as_str()));
        out.push(tokens[k].clone());
        if empty_pair || empty_value {
            out.push(Token {
                text: EMPTY.to_string(),
                sp: false,
            });
        }
    }
    out
}

/// Renders tokens back as text (a template when some are `<*>`).
pub fn render<'a>(tokens: impl IntoIterator<Item = &'a str>, sps: &[bool]) -> String {
    let mut s = String::new();
    for (t, sp) in tokens.into_iter().zip(sps) {
        if *sp && !s.is_empty() {
            s.push(' ');
        }
        if t != EMPTY {
            s.push_str(t);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(msg: &str) -> String {
        let t = tokenize(msg);
        let sps: Vec<bool> = t.iter().map(|t| t.sp).collect();
        render(t.iter().map(|t| t.text.as_str()), &sps)
    }

    #[test]
    fn masks_generic_shapes() {
        assert_eq!(
            masked("Received connection request /10.10.34.11:45307"),
            "Received connection request <*>"
        );
        assert_eq!(
            masked("session opened for user cyrus by (uid=0)"),
            "session opened for user cyrus by (uid=<*>)"
        );
        assert_eq!(
            masked(
                "Block broadcast_9_piece0 stored as bytes in memory (estimated size 5.2 KB, free 5.2 KB)"
            ),
            "Block <*> stored as bytes in memory (estimated size <*> KB, free <*> KB)"
        );
        assert_eq!(masked("delete blk_1 blk_2 blk_3"), "delete <*>");
        assert_eq!(masked("Sun Dec 04 04:47:44 2005 ok"), "<*> ok");
        assert_eq!(masked("ready=true,policy=3"), "ready=<*>,policy=<*>");
    }

    #[test]
    fn empty_slots_are_marked() {
        let t = tokenize("call() done key= next");
        let texts: Vec<&str> = t.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            texts,
            vec!["call", "(", EMPTY, ")", "done", "key", "=", EMPTY, "next"]
        );
    }
}
