"""Streaming template miner v2 (sub-token Drain + closed-vocabulary split)."""
from tok import WILD

PUNCT = set("=,;:()[]{}\"'|")
# generic "identifier nouns": the word after them names an entity, so it is a value, not a template word
NOUNS = {"user", "username", "host", "hostname", "node", "server", "client", "port", "file", "filename",
         "path", "dir", "directory", "folder", "id", "name", "uid", "gid", "pid", "instance", "device",
         "interface", "address", "addr", "ip", "account", "domain", "job", "task", "container", "app",
         "application", "package", "table", "database", "db", "queue", "topic", "volume", "disk", "image",
         "process", "thread", "session", "url", "uri", "key", "group", "role", "service", "module", "class"}


class Cluster:
    __slots__ = ("id", "tpl", "sps", "count", "alias", "vals", "open")

    def __init__(self, cid, tpl, sps):
        self.id = cid
        self.tpl = list(tpl)
        self.sps = list(sps)
        self.count = 1
        self.alias = None
        self.vals = {}     # pos -> {value: count}  (only for positions generalised from words)
        self.open = set()  # positions known to be genuinely variable


DEFAULT = dict(
    st=0.6,            # similarity threshold
    depth=2,           # prefix tokens in the tree key (after the length)
    punct_w=0.0,       # weight of punctuation tokens in similarity
    key="first",       # first | words  (words: prefix built from word tokens only)
    split=True,        # closed-vocabulary split at finish
    maxd=6,            # max distinct values at a position for it to count as a closed vocab
    minc=1,            # every value must occur >= minc times
    minfrac=0.0,       # every value must occur >= minfrac * cluster count
    kvslot=True,       # positions right after '=' or glued ':' are never split (they are values)
    afterwild=True,    # a position right after a variable (e.g. a unit after a number) is never split
    nouns=True,        # a position right after an identifier noun (user, host, ...) is never split
    K=8,               # tracked distinct values per position (memory bound)
)


class Miner:
    def __init__(self, **cfg):
        c = dict(DEFAULT)
        c.update(cfg)
        self.c = c
        self.leaves = {}
        self.clusters = []

    def _key(self, toks):
        d = self.c["depth"]
        out = []
        if self.c["key"] == "first":
            for t in toks[:d]:
                out.append(t)
        else:
            for t in toks:
                if len(out) >= d:
                    break
                if t in PUNCT:
                    continue
                out.append(t)
        return (len(toks), tuple(out))

    def _sim(self, tpl, toks):
        pw = self.c["punct_w"]
        same = 0.0
        tot = 0.0
        npar = 0
        for a, b in zip(tpl, toks):
            if a == WILD:
                npar += 1
                continue
            w = pw if a in PUNCT else 1.0
            tot += w
            if a == b:
                same += w
        return (same / tot if tot else 1.0), npar

    def add(self, toks, sps):
        key = self._key(toks)
        leaf = self.leaves.setdefault(key, [])
        best, bsim, bpar = None, -1.0, -1
        for cl in leaf:
            s, p = self._sim(cl.tpl, toks)
            if s > bsim or (s == bsim and p > bpar):
                best, bsim, bpar = cl, s, p
        if best is not None and bsim >= self.c["st"]:
            self._update(best, toks)
            return best
        cl = Cluster(len(self.clusters), toks, sps)
        self.clusters.append(cl)
        leaf.append(cl)
        return cl

    def _update(self, cl, toks):
        K = self.c["K"]
        for i, (a, b) in enumerate(zip(cl.tpl, toks)):
            if a != b and a != WILD:
                # position becomes variable; seed its value table with the old constant
                cl.tpl[i] = WILD
                if b == WILD:
                    cl.open.add(i)
                else:
                    cl.vals[i] = {a: cl.count, b: 1}
            elif a == WILD and i not in cl.open:
                if b == WILD:
                    cl.open.add(i)
                    cl.vals.pop(i, None)
                elif i in cl.vals:
                    v = cl.vals[i]
                    v[b] = v.get(b, 0) + 1
                    if len(v) > K:
                        cl.open.add(i)
                        del cl.vals[i]
        cl.count += 1

    def is_kvslot(self, cl, i):
        if i == 0:
            return False
        p = cl.tpl[i - 1]
        return p == "=" or (p == ":" and not cl.sps[i])

    def split_positions(self, cl):
        """Positions whose values form a small closed vocabulary of frequent words."""
        if not self.c["split"]:
            return []
        out = []
        for i, v in cl.vals.items():
            if i in cl.open:
                continue
            if self.c["kvslot"] and self.is_kvslot(cl, i):
                continue
            if self.c["afterwild"] and i > 0 and cl.tpl[i - 1] == WILD:
                continue
            if self.c["nouns"] and i > 0 and cl.tpl[i - 1] in NOUNS:
                continue
            if not (2 <= len(v) <= self.c["maxd"]):
                continue
            m = min(v.values())
            if m >= self.c["minc"] and m >= self.c["minfrac"] * cl.count:
                out.append(i)
        return sorted(out)

    def label(self, cl, toks):
        """Final (cluster, template string) for a message assigned to cl."""
        sp = self.split_positions(cl)
        tpl = list(cl.tpl)
        for i in sp:
            tpl[i] = toks[i]
        return (cl.id,) + tuple(toks[i] for i in sp), tpl
