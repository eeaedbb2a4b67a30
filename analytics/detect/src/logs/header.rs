//! Finding the message in a raw log line without knowing its format: the timestamp, level,
//! process and component prefix is recognised by shape, not configured per system.
//!
//! Scan at most [`MAX_HEADER`] leading tokens (a `[...]` group is one token) for a level: a bracketed
//! level word, a bare upper-case one (unless a `component:` came first), or a logcat letter after
//! time-like tokens. With a level, drop through it and an optional separator, bracket group,
//! `component:` (or `dotted.logger [..]`) and `-`. Without one, drop leading time-like tokens and a
//! syslog `host prog[pid]:` prefix.

use std::sync::LazyLock;

use regex::Regex;

/// How many leading tokens may hold the level.
pub const MAX_HEADER: usize = 12;
const SCAN: usize = MAX_HEADER + 6;
const LEVELS: &[&str] = &[
    "TRACE",
    "DEBUG",
    "DBG",
    "INFO",
    "INFORMATION",
    "NOTICE",
    "WARN",
    "WARNING",
    "ERROR",
    "ERR",
    "SEVERE",
    "FATAL",
    "CRITICAL",
    "CRIT",
    "ALERT",
    "EMERG",
    "EMERGENCY",
    "FINE",
    "FINER",
    "FINEST",
    "CONFIG",
    "VERBOSE",
];
const LETTER_LEVELS: &[&str] = &["V", "D", "I", "W", "E", "F", "A"];
const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

static TIMELIKE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\[(]?[0-9][0-9\-/:.,T+Z_]*[\])]?,?$").expect("compiles"));
static DOTTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][\w$\-]*(\.[\w$\-]+)+$").expect("compiles"));

/// A header token: byte range in the line.
#[derive(Clone, Copy)]
struct Tok {
    start: usize,
    end: usize,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Leading tokens of a line; a bracket group (nesting-aware, under 300 bytes) is one token,
/// together with any text glued after it.
fn header_tokens(line: &str, limit: usize) -> Vec<Tok> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < limit {
        while i < b.len() && is_blank(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        if b[i] == b'[' {
            let mut depth = 0i32;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'[' => depth += 1,
                    b']' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if j < b.len() && j - i < 300 {
                i = j + 1;
                while i < b.len() && !is_blank(b[i]) {
                    i += 1;
                }
                out.push(Tok { start, end: i });
                continue;
            }
        }
        while i < b.len() && !is_blank(b[i]) {
            i += 1;
        }
        out.push(Tok { start, end: i });
    }
    out
}

fn is_timelike(t: &str) -> bool {
    if TIMELIKE.is_match(t) {
        return true;
    }
    let tl = t.trim_matches(|c| "[](),".contains(c)).to_lowercase();
    let alpha = !tl.is_empty() && tl.chars().all(char::is_alphabetic) && tl.chars().count() <= 9;
    let prefix: String = tl.chars().take(3).collect();
    alpha && (MONTHS.contains(&prefix.as_str()) || DAYS.contains(&prefix.as_str()))
}

fn is_level(t: &str, after_times_only: bool) -> bool {
    if t.len() >= 3 && t.starts_with('[') && t.ends_with(']') {
        return LEVELS.contains(&t[1..t.len() - 1].trim().to_uppercase().as_str());
    }
    LEVELS.contains(&t) || (after_times_only && LETTER_LEVELS.contains(&t))
}

fn is_bracket_group(t: &str) -> bool {
    t.starts_with('[') && t.ends_with(']')
}

fn is_component(t: &str) -> bool {
    t.ends_with(':') && t.len() > 1 && !t.starts_with('[')
}

/// Index of the level token, if the header has one.
fn find_level(line: &str, toks: &[Tok]) -> Option<usize> {
    let mut all_time = true;
    let mut colon_seen = false;
    for (k, tok) in toks.iter().take(MAX_HEADER).enumerate() {
        let t = &line[tok.start..tok.end];
        if is_level(t, all_time && k > 0) && (t.starts_with('[') || !colon_seen) {
            return Some(k);
        }
        if !is_timelike(t) {
            all_time = false;
            colon_seen |= t.ends_with(':');
        }
    }
    None
}

/// The message part of a raw log line.
pub fn strip_header(line: &str) -> &str {
    let toks = header_tokens(line, SCAN);
    let text = |k: usize| &line[toks[k].start..toks[k].end];
    let Some(level) = find_level(line, &toks) else {
        let mut k = 0;
        while k < toks.len() && is_timelike(text(k)) {
            k += 1;
        }
        if let Some(j) = (k..toks.len().min(k + 3)).find(|j| text(*j).ends_with(':')) {
            k = j + 1;
        }
        return if k >= toks.len() {
            ""
        } else {
            line[toks[k].start..].trim()
        };
    };
    let n = toks.len();
    let mut k = level + 1;
    if k < n && matches!(text(k), "-" | ":") {
        k += 1;
    }
    if k + 1 < n && is_bracket_group(text(k)) && (text(k + 1) == "-" || is_component(text(k + 1))) {
        k += 1;
    }
    if k < n {
        if is_component(text(k)) {
            k += 1;
        } else if DOTTED.is_match(text(k)) && k + 1 < n && text(k + 1).starts_with('[') {
            k += 2;
        }
    }
    if k < n && text(k) == "-" {
        k += 1;
    }
    let cut = if k < n {
        toks[k].start
    } else {
        toks.last().map_or(0, |t| t.end)
    };
    line[cut..].trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_common_headers() {
        assert_eq!(
            strip_header(
                "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating"
            ),
            "PacketResponder 1 for block blk_38865049064139660 terminating"
        );
        assert_eq!(
            strip_header(
                "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200"
            ),
            "Notification time out: 3200"
        );
        assert_eq!(
            strip_header(
                "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0"
            ),
            "authentication failure; logname= uid=0"
        );
        assert_eq!(
            strip_header(
                "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties"
            ),
            "workerEnv.init() ok /etc/httpd/conf/workers2.properties"
        );
        assert_eq!(
            strip_header(
                "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app wtoken"
            ),
            "printFreezingDisplayLogsopening app wtoken"
        );
        assert_eq!(strip_header(""), "");
    }
}
