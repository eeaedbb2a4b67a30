"""Evaluate miner v2.  Usage: python run2.py [key=value ...] [source=raw|content|line] [-v SYSTEM]"""
import sys
import time
from common import SYSTEMS, load, grouping_accuracy, parsing_accuracy, error_report
from header import strip_header
import tok as T
import miner2 as M2

_cache = {}


def get(system):
    if system not in _cache:
        _cache[system] = load(system)
    return _cache[system]


def parse_system(system, cfg, source="raw", order=None, online=False):
    lines, contents, templates = get(system)
    if order is not None:
        lines = [lines[i] for i in order]
        contents = [contents[i] for i in order]
        templates = [templates[i] for i in order]
    if source == "raw":
        msgs = [strip_header(l) for l in lines]
    elif source == "content":
        msgs = [c.strip() for c in contents]
    else:
        msgs = lines
    o = T.Opts(split=cfg.get("t_split", True), literals=cfg.get("t_lit", True), digit=cfg.get("t_digit", "any"),
               dates=cfg.get("t_dates", True), empty=cfg.get("t_empty", True),
               kvval=cfg.get("t_kvval", False), ellipsis=cfg.get("t_ell", True),
               collapse=cfg.get("t_collapse", True))
    mcfg = {k: v for k, v in cfg.items() if not k.startswith("t_")}
    mod = M2
    if cfg.get("miner") == 3:
        import miner3 as mod
        mcfg.pop("miner")
    miner = mod.Miner(**mcfg)
    assigned = []
    for m in msgs:
        tk = T.tokenize(m, o)
        toks = [a for a, _ in tk]
        sps = [b for _, b in tk]
        cl = miner.add(toks, sps)
        assigned.append((cl, toks, miner.label(cl, toks)[0] if online else None))
    if hasattr(miner, "finish"):
        miner.finish()
    labels, tpls = [], []
    for cl, toks, onl in assigned:
        cl = miner.resolve(cl) if hasattr(miner, "resolve") else cl
        lab, tpl = miner.label(cl, toks)
        labels.append(onl if online else lab)
        tpls.append(T.detok(tpl, cl.sps))
    ga = grouping_accuracy(templates, labels)
    pa = parsing_accuracy(templates, tpls)
    return ga, pa, labels, msgs, templates, tpls


def conv(v):
    for f in (int, float):
        try:
            return f(v)
        except ValueError:
            pass
    if v in ("True", "False"):
        return v == "True"
    return v


def evaluate(cfg, source="raw", systems=SYSTEMS):
    return {s: parse_system(s, cfg, source)[:2] for s in systems}


def main(argv):
    cfg = {}
    verbose = None
    source = "raw"
    online = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-v":
            verbose = argv[i + 1]
            i += 2
            continue
        k, v = a.split("=", 1)
        if k == "source":
            source = v
        elif k == "online":
            online = v == "1"
        else:
            cfg[k] = conv(v)
        i += 1
    t0 = time.time()
    gas, pas = [], []
    for s in SYSTEMS:
        ga, pa, labels, msgs, templates, tpls = parse_system(s, cfg, source, online=online)
        gas.append(ga)
        pas.append(pa)
        print(f"{s:10s} GA {ga:.4f}  PA {pa:.4f}  groups {len(set(labels))}")
        if verbose == s or verbose == "all":
            print(error_report(templates, labels, [f"{m}   ==> {t}" for m, t in zip(msgs, tpls)]))
    print(f"{'AVG':10s} GA {sum(gas) / len(gas):.4f}  PA {sum(pas) / len(pas):.4f}  min GA {min(gas):.4f}  ({time.time() - t0:.1f}s)")


if __name__ == "__main__":
    main(sys.argv[1:])
