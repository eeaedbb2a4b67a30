"""Generic (system-independent) header stripper: raw log line -> message body.

Algorithm (one left-to-right scan over at most MAX_HDR tokens):
  tokens = whitespace-separated runs, except that a run starting with '[' extends to its
  matching ']' (nesting-aware, may contain spaces), so "[req-1 - - -]" is one token.
  1. Find the first LEVEL token among the first MAX_HDR tokens:
       - a bracketed level word in any case ("[notice]", "[error]"), or
       - a bare ALL-UPPERCASE level word (INFO, WARN, ...) provided no earlier non-time token ended
         in ':' (so "logrotate: ALERT exited ..." keeps ALERT in the message), or
       - a single letter V/D/I/W/E/F/A if every earlier token is time-like or numeric (logcat).
     If found, drop everything up to and including it, then (in this order, each optional):
       a. a separator token "-" or ":"
       b. a bracketed group "[...]" if it is followed by "-" or by a component token ending in ':'
          (log4j "[thread] -" / zookeeper); "[client 1.2.3.4] msg" (Apache) is kept
       c. a component token ending in ':' ("dfs.FSNamesystem:", "WindowManager:")
          or a dotted logger name followed by a bracket group ("nova.compute.manager [req-..]")
       d. a separator "-"
  2. Otherwise (no level, e.g. syslog): drop the leading run of time-like/numeric tokens,
     then if one of the next 3 tokens ends with ':' (host prog[pid]:), drop through it.
"""
import re

LEVELS = {"TRACE", "DEBUG", "DBG", "INFO", "INFORMATION", "NOTICE", "WARN", "WARNING", "ERROR", "ERR",
          "SEVERE", "FATAL", "CRITICAL", "CRIT", "ALERT", "EMERG", "EMERGENCY", "FINE", "FINER",
          "FINEST", "CONFIG", "VERBOSE"}
LETTER_LEVELS = set("VDIWEFA")
MONTHS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
DAYS = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
MAX_HDR = 12

RE_TIMELIKE = re.compile(r"^[\[(]?[0-9][0-9\-/:.,T+Z_]*[\])]?,?$")
RE_DOTTED = re.compile(r"^[A-Za-z_][\w$\-]*(\.[\w$\-]+)+$")


def _tokens(line, limit):
    """Yield (start, end, text) header tokens; bracket groups are one token."""
    out = []
    i, n = 0, len(line)
    while i < n and len(out) < limit:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        s = i
        if line[i] == "[":
            depth = 0
            j = i
            while j < n:
                c = line[j]
                if c == "[":
                    depth += 1
                elif c == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j < n and j - i < 300:
                i = j + 1
                # a bracket group glued to more text ("[x]:foo") continues as one token
                while i < n and line[i] not in " \t":
                    i += 1
                out.append((s, i, line[s:i]))
                continue
            i = s
        while i < n and line[i] not in " \t":
            i += 1
        out.append((s, i, line[s:i]))
    return out


def is_timelike(t):
    if RE_TIMELIKE.match(t):
        return True
    tl = t.strip("[](),").lower()
    return tl[:3] in MONTHS and len(tl) <= 9 and tl.isalpha() or tl[:3] in DAYS and len(tl) <= 9 and tl.isalpha()


def level_of(t, prev_all_time):
    if len(t) >= 3 and t[0] == "[" and t[-1] == "]":
        inner = t[1:-1].strip()
        if inner.upper() in LEVELS:
            return True
        return False
    if t in LEVELS:
        return True
    if len(t) == 1 and t in LETTER_LEVELS and prev_all_time:
        return True
    return False


def strip_header(line):
    toks = _tokens(line, MAX_HDR + 6)
    lvl = -1
    all_time = True
    colon_seen = False
    for k, (s, e, t) in enumerate(toks[:MAX_HDR]):
        if level_of(t, all_time and k > 0) and (t.startswith("[") or not colon_seen):
            lvl = k
            break
        if not is_timelike(t):
            all_time = False
            if t.endswith(":"):
                colon_seen = True
    if lvl >= 0:
        k = lvl + 1
        if k < len(toks) and toks[k][2] in ("-", ":"):
            k += 1
        if (k + 1 < len(toks) and toks[k][2].startswith("[") and toks[k][2].endswith("]")
                and (toks[k + 1][2] == "-" or (toks[k + 1][2].endswith(":") and not toks[k + 1][2].startswith("[")))):
            k += 1
        if k < len(toks) - 0:
            t = toks[k][2]
            if t.endswith(":") and len(t) > 1 and not t.startswith("["):
                k += 1
            elif RE_DOTTED.match(t) and k + 1 < len(toks) and toks[k + 1][2].startswith("["):
                k += 2
        if k < len(toks) and toks[k][2] == "-":
            k += 1
        cut = toks[k][0] if k < len(toks) else (toks[-1][1] if toks else 0)
        if k >= len(toks):
            cut = toks[-1][1] if k == len(toks) and len(toks) < MAX_HDR + 6 else toks[k - 1][1]
        return line[cut:].strip()
    # no level: syslog-like
    k = 0
    while k < len(toks) and is_timelike(toks[k][2]):
        k += 1
    for j in range(k, min(k + 3, len(toks))):
        if toks[j][2].endswith(":"):
            k = j + 1
            break
    if k >= len(toks):
        return ""
    return line[toks[k][0]:].strip()


if __name__ == "__main__":
    import sys
    from common import SYSTEMS, load
    verbose = "-v" in sys.argv
    tot = 0
    for s in SYSTEMS:
        lines, contents, _ = load(s)
        bad = [(l, c, strip_header(l)) for l, c in zip(lines, contents) if strip_header(l) != c.strip()]
        print(f"{s:10s} exact-match {1 - len(bad) / len(lines):.4f}")
        tot += 1 - len(bad) / len(lines)
        if verbose:
            for l, c, h in bad[:6]:
                print("   RAW ", l[:160])
                print("   GT  ", c[:120])
                print("   GOT ", h[:120])
    print(f"avg {tot / len(SYSTEMS):.4f}")
