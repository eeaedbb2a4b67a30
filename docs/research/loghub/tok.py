"""Tokenizer + generic masking, v2 (sub-token level).

A message is split on whitespace into words; each word is
  1. masked as a whole if its core (word without surrounding punctuation) is a known variable shape
     (URL, email, IPv4[:port], IPv6, UUID, 0x-hex, long hex, number / date / time, number+unit, path);
  2. otherwise split at delimiter characters DELIMS (kept as their own tokens);
  3. every remaining piece that contains a digit (or is a variable shape) becomes <*>;
     optionally literals true/false/null/none become <*>.
Each token carries `sp` = True if whitespace preceded it in the message (used to rebuild text).
"""
import re

WILD = "<*>"
EMPTY = "<E>"
DELIMS = "=,;:()[]{}\"'|"
_DELIM_SET = set(DELIMS)

RE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://\S*$")
RE_EMAIL = re.compile(r"^[\w.+\-]+@[\w\-]+(\.[\w\-]+)+$")
RE_IPV4 = re.compile(r"^/?\d{1,3}(\.\d{1,3}){3}(:\d+)?$")
RE_IPV6 = re.compile(r"^(?=.*\d)[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}$")
RE_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
RE_HEX0X = re.compile(r"^0[xX][0-9a-fA-F]+$")
RE_HEXLONG = re.compile(r"^(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}$")
RE_NUM = re.compile(r"^[-+]?\d+([.,:/\-]\d+)*([eE][-+]?\d+)?$")   # ints, floats, dates, times
RE_NUM_UNIT = re.compile(r"^[-+]?\d+(\.\d+)?[a-zA-Z%]{1,5}$")       # 12ms 4KB 3.5s 100%
RE_PATH = re.compile(r"^(/[^/\s]*){2,}/?$|^[A-Za-z]:\\")
RE_DIGIT = re.compile(r"\d")
STRIP = "()[]{}<>\"',;:."
LITERALS = {"true", "false", "null", "none", "nil", "True", "False", "NULL", "None"}


def whole_var(core):
    if not core:
        return False
    return bool(RE_NUM.match(core) or RE_IPV4.match(core) or RE_HEX0X.match(core) or RE_UUID.match(core)
                or RE_HEXLONG.match(core) or RE_URL.match(core) or RE_EMAIL.match(core)
                or RE_PATH.match(core) or RE_NUM_UNIT.match(core) or RE_IPV6.match(core))


class Opts:
    def __init__(self, split=True, literals=True, digit="any", dates=True, empty=True, kvval=False,
                 ellipsis=True, collapse=True):
        self.collapse = collapse
        self.kvval = kvval
        self.ellipsis = ellipsis
        self.empty = empty
        self.dates = dates
        self.split = split
        self.literals = literals
        self.digit = digit


def mask_piece(p, o):
    if p == WILD:
        return p
    if whole_var(p):
        return WILD
    if o.digit == "any" and RE_DIGIT.search(p):
        return WILD
    if o.literals and p in LITERALS:
        return WILD
    return p


MONTHS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
          "january", "february", "march", "april", "june", "july", "august", "september", "october",
          "november", "december"}
DAYS = {"mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun", "monday", "tuesday",
        "wednesday", "thursday", "friday", "saturday", "sunday"}


def _is_num_word(w):
    return bool(w) and (RE_NUM.match(w.strip(STRIP)) is not None)


def _date_words(words):
    """Indexes of month/weekday names that sit next to a number or another date word (dates)."""
    out = set()
    n = len(words)
    names = [w.strip(STRIP).lower() in MONTHS or w.strip(STRIP).lower() in DAYS for w in words]
    for k in range(n):
        if not names[k]:
            continue
        for d in (-1, 1, 2):
            j = k + d
            if 0 <= j < n and (_is_num_word(words[j]) or (names[j] and d == 1 and k + 2 < n and _is_num_word(words[k + 2]))):
                out.add(k)
                break
    return out


def tokenize(msg, o=Opts()):
    """Return list of (token, sp) pairs."""
    out = []
    words = msg.split()
    dates = _date_words(words) if o.dates else ()
    for wi, w in enumerate(words):
        if wi in dates:
            i, j = 0, len(w)
            while i < j and w[i] in STRIP:
                i += 1
            while j > i and w[j - 1] in STRIP:
                j -= 1
            w = w[:i] + WILD + w[j:]
        # whole-word variable check on the core
        i, j = 0, len(w)
        while i < j and w[i] in STRIP:
            i += 1
        while j > i and w[j - 1] in STRIP:
            j -= 1
        core = w[i:j]
        if core and whole_var(core) and core != WILD:
            pieces = list(w[:i]) + [WILD] + list(w[j:])
            first = True
            for p in pieces:
                out.append((p, first))
                first = False
            continue
        if not o.split:
            out.append((mask_piece(w, o) if not any(c in _DELIM_SET for c in w) else w, True))
            continue
        first = True
        buf = []
        if o.kvval:
            w = _kv_values(w, o)
        if o.ellipsis and ".." in w:
            w = RE_ELLIPSIS.sub(lambda m: "\x00" + m.group(0) + "\x00", w)
        for ch in w:
            if ch == "\x00":
                if buf:
                    p = "".join(buf)
                    out.append((p if RE_ELLIPSIS.fullmatch(p) else mask_piece(p, o), first))
                    first = False
                    buf = []
                continue
            if ch in _DELIM_SET:
                if buf:
                    out.append((mask_piece("".join(buf), o), first))
                    first = False
                    buf = []
                out.append((ch, first))
                first = False
            else:
                buf.append(ch)
        if buf:
            out.append((mask_piece("".join(buf), o), first))
    if o.collapse:
        col = []
        for t, sp in out:
            if t == WILD and col and col[-1][0] == WILD:
                continue
            col.append((t, sp))
        out = col
    if o.empty:
        out = _insert_empty(out)
    return out


RE_ELLIPSIS = re.compile(r"\.{2,}")


def _kv_values(w, o):
    """key=value inside a word: a value containing a digit, up to the next ',' / ';' at bracket depth 0,
    is replaced by <*> as a whole (so "ws=WorkSource{10113}" and "ws=null" align)."""
    k = w.find("=")
    if k <= 0:
        return w
    res = []
    i = 0
    n = len(w)
    while True:
        k = w.find("=", i)
        if k < 0 or k + 1 >= n:
            res.append(w[i:])
            break
        res.append(w[i:k + 1])
        j = k + 1
        depth = 0
        while j < n:
            c = w[j]
            if c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif c in ",;=" and depth == 0:
                break
            j += 1
        val = w[k + 1:j]
        if val and RE_DIGIT.search(val) and depth == 0 and any(c in val for c in "([{"):
            res.append(WILD)
        else:
            res.append(val)
        i = j
        if i >= n:
            break
    return "".join(res)


PAIRS = {"(": ")", "[": "]", "{": "}", '"': '"', "'": "'"}


def _insert_empty(out):
    """Insert an EMPTY token into an empty value slot: "()", "[]", "{}", '""', and "key=" followed by
    whitespace/end or a delimiter.  EMPTY is an ordinary constant token rendered as "" in templates;
    it generalises to <*> when a non-empty value shows up at that position."""
    res = []
    n = len(out)
    for k, (t, sp) in enumerate(out):
        res.append((t, sp))
        nxt = out[k + 1] if k + 1 < n else None
        if t in PAIRS and nxt is not None and nxt[0] == PAIRS[t] and not nxt[1]:
            res.append((EMPTY, False))
        elif t == "=" and (nxt is None or nxt[1] or nxt[0] in ",;)]}"):
            res.append((EMPTY, False))
    return res


def detok(tokens, sps):
    s = []
    for t, sp in zip(tokens, sps):
        if sp and s:
            s.append(" ")
        if t != EMPTY:
            s.append(t)
    return "".join(s)


if __name__ == "__main__":
    for m in ["ready=true,policy=3,wakefulness=1,wksummary=0x23,adj=0.0userId=0",
              "Received connection request /10.10.34.11:45307",
              "session opened for user cyrus by (uid=0)",
              "BIOS-e820: 0000000000100000 - 0000000007eae000 (usable)",
              "Block broadcast_9_piece0 stored as bytes in memory (estimated size 5.2 KB, free 5.2 KB)"]:
        t = tokenize(m)
        print(detok([a for a, _ in t], [b for _, b in t]))
