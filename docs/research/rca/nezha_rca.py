#!/usr/bin/env python3
"""Service-level root-cause ranking prototype for scry, evaluated on the Nezha TrainTicket DEV split.

Run:  nice -n 19 /work/research/venv/bin/python nezha_rca.py [DATA_DIR] > nezha_rca.out
Needs numpy and pandas only. See README.md next to this file for the method and the figures.

Only signals scry can derive from OTLP replay are used:
  * spans: service (pod name minus its last two '-' parts), operation, start time, parent link;
  * logs: body, severity word, trace/span id, a template id from a Drain-style miner (a port of
    scry's analytics/src/logs tokenizer + miner) and, where the body carries one, the source
    location token `Class#line` (TrainTicket's logback pattern puts it right after the level);
  * metrics: per-pod per-minute CpuUsageRate(%).
Labels (cases.csv) are read for the case list / file list and, at the very end, to score.
inject_time is NOT used by the main configuration (only by the 'inject-anchored' comparison row).
"""
import glob
import json
import os
import re
import sys
from math import exp, lgamma, log, sqrt

import numpy as np
import pandas as pd

DATA = sys.argv[1] if len(sys.argv) > 1 else '/work/shared/data/rca/nezha_trainticket'
DAY = os.path.join(DATA, '2023-01-29')
FF = os.path.join(DATA, 'fault_free', '2023-01-29')

# ----------------------------------------------------------------------------------------------
# Constants of the method (one configuration for all cases)
# ----------------------------------------------------------------------------------------------
CHUNK_S = 60          # baseline is cut into 1-minute chunks; their spread gives the variance
MIN_BASE_SPANS = 5    # an operation needs >= 5 baseline spans to be judged
UNSEEN_MEAN = 0.1     # expected count for a log key never seen in the baseline
Z_CAP = 10.0          # cap on a single key's z-equivalent
Z_FLOOR = 2.0         # each log component counts only above z = 2
CPU_FLOOR_PP = 20.0   # CPU component counts only above +20 percentage points ...
CPU_SCALE_PP = 10.0   # ... and 10 pp = 1 score unit
CPU_HIST_S = 1200     # CPU baseline: P90 of the previous 20 minutes
PROBE_STEP_S = 15     # onset search: probe every 15 s ...
PROBE_WIN_S = 60      # ... with a 60 s window ...
ONSET_THETA = 3.0     # ... and open the incident at the first probe whose top score >= 3
GRAPH_LAMBDA = 1.0    # a caller is discounted by its most anomalous callee's score
INFO_LEVELS = ('INFO', 'DEBUG', 'TRACE')


def svc_of(pod):
    return '-'.join(pod.split('-')[:-2])


# ----------------------------------------------------------------------------------------------
# Log template miner: Python port of scry analytics/src/logs/{header,tokens,miner}.rs
# (header strip, masking tokenizer, Drain-style clustering with closed-vocabulary labels).
# ----------------------------------------------------------------------------------------------
WILD = '<*>'
DELIMS = set('=,;:()[]{}"\'|')
STRIP = '()[]{}<>"\',;:.'
LITERALS = {"true", "false", "null", "none", "nil", "True", "False", "NULL", "None"}
SHAPES = [re.compile(p) for p in [
    r"^[-+]?\d+([.,:/\-]\d+)*([eE][-+]?\d+)?$", r"^/?\d{1,3}(\.\d{1,3}){3}(:\d+)?$", r"^0[xX][0-9a-fA-F]+$",
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    r"^[A-Za-z][A-Za-z0-9+.\-]*://\S*$", r"^[\w.+\-]+@[\w\-]+(\.[\w\-]+)+$", r"^(/[^/\s]*){2,}/?$|^[A-Za-z]:\\",
    r"^[-+]?\d+(\.\d+)?[a-zA-Z%]{1,5}$"]]
DSHAPES = [re.compile(r"^[0-9a-fA-F]{8,}$"), re.compile(r"^[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}$")]
DIGIT = re.compile(r'\d')
LEVELS = {"TRACE", "DEBUG", "DBG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "ERR", "SEVERE", "FATAL", "CRITICAL"}
PUNCT = set(['=', ',', ';', ':', '(', ')', '[', ']', '{', '}', '"', "'", '|'])
NOUNS = set("user username host hostname node server client port file filename path dir directory folder id name "
            "uid gid pid instance device interface address addr ip account domain job task container app "
            "application package table database db queue topic volume disk image process thread session url "
            "uri key group role service module class".split())
DOTTED = re.compile(r'^[A-Za-z_][\w$\-]*(\.[\w$\-]+)+$')
CODE_LOC = re.compile(r'^[A-Za-z_][\w$.\[\]]*#\d+$')   # logback "%logger{..}#%line" token


def _has_digit(s):
    return DIGIT.search(s) is not None


def _whole_var(core):
    if not core or not (_has_digit(core) or any(ch in core for ch in '/@:\\-')):
        return False
    return any(p.match(core) for p in SHAPES) or (_has_digit(core) and any(p.match(core) for p in DSHAPES))


def _mask_piece(p):
    return WILD if (p == WILD or _has_digit(p) or p in LITERALS or _whole_var(p)) else p


def _core_range(w):
    a = len(w) - len(w.lstrip(STRIP))
    return a, a + len(w[a:].rstrip(STRIP))


def _split_word(word, out):
    first, start, i, n = True, 0, 0, len(word)
    while i < n:
        c = word[i]
        if c == '.' and word[i:i + 2] == '..':
            d = len(word[i:]) - len(word[i:].lstrip('.'))
            if start < i:
                out.append((_mask_piece(word[start:i]), first)); first = False
            out.append((word[i:i + d], first)); first = False
            i += d; start = i
        elif c in DELIMS:
            if start < i:
                out.append((_mask_piece(word[start:i]), first)); first = False
            out.append((c, first)); first = False
            i += 1; start = i
        else:
            i += 1
    if start < n:
        out.append((_mask_piece(word[start:]), first))


def tokenize(msg):
    out = []
    for w in msg.split():
        a, b = _core_range(w)
        if w[a:b] != WILD and _whole_var(w[a:b]):
            first = True
            for ch in w[:a]:
                out.append((ch, first)); first = False
            out.append((WILD, first)); first = False
            for ch in w[b:]:
                out.append((ch, first)); first = False
        else:
            _split_word(w, out)
    ded = []
    for t in out:
        if ded and t[0] == WILD and ded[-1][0] == WILD:
            continue
        ded.append(t)
    return ded


def parse_line(line):
    """-> (severity word, message after the header, source location token or '')"""
    toks = line.split()
    for k, t in enumerate(toks[:12]):
        if t in LEVELS:
            rest = toks[k + 1:]
            loc = rest[0] if rest and CODE_LOC.match(rest[0]) else ''
            if rest and rest[0] in ('-', ':'):
                rest = rest[1:]
            if rest and rest[0].endswith(':') and not rest[0].startswith('['):
                rest = rest[1:]
            elif rest and DOTTED.match(rest[0]) and len(rest) > 1 and rest[1].startswith('['):
                rest = rest[2:]
            return t, ' '.join(rest), loc
    return '', line.strip(), ''


class Miner:
    def __init__(self, sim=0.6, depth=2, max_values=8, max_closed=6):
        self.sim, self.depth, self.mv, self.mc = sim, depth, max_values, max_closed
        self.buckets, self.cl = {}, []

    def _best(self, texts):
        d = min(self.depth, len(texts))
        best = None
        for cid in self.buckets.get((len(texts), tuple(texts[:d])), []):
            same = tot = par = 0
            for a, x in zip(self.cl[cid]['t'], texts):
                if a == WILD:
                    par += 1
                elif a not in PUNCT:
                    tot += 1; same += a == x
            s = 1.0 if tot == 0 else same / tot
            if best is None or s > best[1] or (s == best[1] and par > best[2]):
                best = (cid, s, par)
        return best[0] if best and best[1] >= self.sim else None

    def add(self, toks):
        texts = [t for t, _ in toks]
        cid = self._best(texts)
        if cid is not None:
            c = self.cl[cid]
            for i, bt in enumerate(texts):
                if c['t'][i] != WILD and c['t'][i] != bt:
                    old = c['t'][i]; c['t'][i] = WILD
                    if bt == WILD:
                        c['open'][i] = True
                    else:
                        c['vals'][i] = {old: c['n'], bt: 1}
                elif c['t'][i] == WILD and not c['open'][i]:
                    if bt == WILD:
                        c['open'][i] = True; c['vals'].pop(i, None)
                    elif i in c['vals']:
                        v = c['vals'][i]; v[bt] = v.get(bt, 0) + 1
                        if len(v) > self.mv:
                            c['open'][i] = True; c['vals'].pop(i)
            c['n'] += 1
            return cid
        d = min(self.depth, len(texts))
        self.cl.append(dict(t=list(texts), sps=[sp for _, sp in toks], n=1, vals={}, open=[False] * len(texts)))
        self.buckets.setdefault((len(texts), tuple(texts[:d])), []).append(len(self.cl) - 1)
        return len(self.cl) - 1

    def label(self, cid, texts):
        c = self.cl[cid]; t = list(c['t'])
        for i, v in c['vals'].items():
            prev = c['t'][i - 1] if i > 0 else None
            value_slot = prev == '=' or (prev == ':' and not c['sps'][i])
            if not c['open'][i] and not value_slot and prev != WILD and prev not in NOUNS and 2 <= len(v) <= self.mc:
                t[i] = texts[i]
        out = ''
        for x, sp in zip(t, c['sps']):
            out += (' ' if sp and out else '') + x
        return out


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------
def load_logs(path, tag):
    df = pd.read_csv(path)
    msgs = []
    for s in df['Log']:
        try:
            msgs.append(json.loads(s)['log'])
        except Exception:
            msgs.append(str(s))
    df['msg'] = msgs
    # Timestamp is UTC everywhere (TimeUnixNano is unset on 45 rows)
    df['t'] = pd.to_datetime(df['Timestamp'].str.rstrip('Z'), format='ISO8601').astype('int64') / 1e9
    df['service'] = df['PodName'].map(svc_of)
    df['file'] = tag
    return df[['t', 'PodName', 'service', 'TraceID', 'SpanID', 'msg', 'file']]


def load_trace(path, tag):
    df = pd.read_csv(path)
    df['service'] = df['PodName'].map(svc_of)
    df['st'] = df['StartTimeUnixNano'] / 1e9
    df['file'] = tag
    return df[['TraceID', 'SpanID', 'ParentID', 'service', 'OperationName', 'st', 'Duration', 'file']]


def load_all():
    logs = [load_logs(FF + '/log/08_50_log.csv.gz', 'ff')]
    spans = [load_trace(FF + '/trace/08_50_trace.csv.gz', 'ff')]
    for f in sorted(glob.glob(DAY + '/log/*_log.csv.gz')):
        logs.append(load_logs(f, os.path.basename(f)[:5]))
    for f in sorted(glob.glob(DAY + '/trace/*_trace.csv.gz')):
        spans.append(load_trace(f, os.path.basename(f)[:5]))
    L = pd.concat(logs, ignore_index=True)
    T = pd.concat(spans, ignore_index=True)
    # mine templates in time order over the whole stream (warm miner), then re-match every line
    # against the settled miner so that one message always maps to one template (see README)
    A = L.drop_duplicates(['t', 'PodName', 'msg']).sort_values('t').reset_index(drop=True)
    m = Miner(); toks = []; lv = []; locs = []
    for msg in A.msg:
        level, body, loc = parse_line(msg)
        tk = tokenize(body); m.add(tk); toks.append(tk); lv.append(level); locs.append(loc)
    tpl = []
    for tk in toks:
        texts = [x for x, _ in tk]
        cid = m._best(texts)
        tpl.append(m.label(cid, texts) if cid is not None else ' '.join(texts))
    A['level'] = lv; A['tpl'] = tpl; A['loc'] = locs
    A['key'] = np.where(A['loc'] != '', A['loc'], A['tpl'])      # main: source location, else template
    L = L.merge(A[['t', 'PodName', 'msg', 'level', 'tpl', 'loc', 'key']], on=['t', 'PodName', 'msg'], how='left')
    ops = T.drop_duplicates('SpanID').set_index('SpanID').OperationName
    L['op'] = L.SpanID.map(ops)                                   # operation of the span that logged it
    # metrics
    ms = []
    for f in glob.glob(DAY + '/metric/ts-*_metric.csv.gz'):
        d = pd.read_csv(f, usecols=['TimeStamp', 'PodName', 'CpuUsageRate(%)'])
        d['service'] = d.PodName.map(svc_of); ms.append(d)
    M = pd.concat(ms, ignore_index=True)
    return L, T, M, m


# ----------------------------------------------------------------------------------------------
# Signals
# ----------------------------------------------------------------------------------------------
def nb_logpmf(k, m, var):
    if var <= m * 1.0001:
        return k * log(m) - m - lgamma(k + 1)
    p = m / var; r = m * m / (var - m)
    return lgamma(k + r) - lgamma(r) - lgamma(k + 1) + r * log(p) + k * log(1 - p)


def nb_tail_z(k, m, var):
    """signed z-equivalent sqrt(-2 ln P) of the tail of count k under a negative binomial (mean m,
    variance var); upper tail if k > m, lower tail otherwise."""
    k = int(round(k)); upper = k > m
    if upper:
        terms = [nb_logpmf(j, m, var) for j in range(k, k + 400)]
    else:
        terms = [nb_logpmf(j, m, var) for j in range(0, k + 1)]
    mx = max(terms); lp = min(0.0, mx + log(sum(exp(t - mx) for t in terms)))
    return (1 if upper else -1) * min(Z_CAP, sqrt(max(0.0, -2 * lp)))


def log_key_scores(Tb, Lb, Tw, Lw, key):
    """For every (service, operation, key) with baseline spans: baseline count per span (mu), the
    between-minute spread of that rate (V, per span, floored at mu), the window count, and the
    NB tail z of the window count given the window's span count for that operation."""
    sb = Tb[['SpanID', 'service', 'OperationName', 'st']].copy()
    sb['k'] = (sb.st // CHUNK_S).astype(np.int64)
    nbk = sb.groupby(['service', 'OperationName', 'k']).size().rename('n').reset_index().rename(columns={'OperationName': 'op'})
    lb = Lb[['SpanID', 'service', 'op', key]].merge(sb[['SpanID', 'k']], on='SpanID')
    cbk = lb.groupby(['service', 'op', key, 'k']).size().rename('c').reset_index()
    sw = Tw[['SpanID', 'service', 'OperationName']]
    nw = sw.groupby(['service', 'OperationName']).size().rename('nw').reset_index().rename(columns={'OperationName': 'op'})
    cw = Lw[Lw.SpanID.isin(sw.SpanID)].groupby(['service', 'op', key]).size().rename('cw').reset_index()
    keys = pd.concat([cbk[['service', 'op', key]], cw[['service', 'op', key]]]).drop_duplicates()
    full = keys.merge(nbk, on=['service', 'op']).merge(cbk, on=['service', 'op', key, 'k'], how='left').fillna({'c': 0})
    G = full.groupby(['service', 'op', key])
    agg = pd.DataFrame({'cb': G.c.sum(), 'nb': G.n.sum(), 'K': G.size()})
    agg['mu'] = agg.cb / agg.nb
    full = full.join(agg[['mu']], on=['service', 'op', key])
    full['d'] = full.n * (full.c / full.n - full.mu) ** 2
    agg['V'] = full.groupby(['service', 'op', key]).d.sum() / (agg.K - 1).clip(lower=1)
    agg = agg.reset_index().merge(nw, on=['service', 'op'], how='left').merge(cw, on=['service', 'op', key], how='left')
    agg = agg.fillna({'nw': 0, 'cw': 0})
    agg = agg[(agg.nb >= MIN_BASE_SPANS) & (agg.nw > 0)].copy()
    agg['e'] = agg.mu * agg.nw
    agg['var'] = np.maximum(agg.V, agg.mu) * agg.nw
    zn = (agg.cw - agg.e) / np.sqrt(agg['var'] + 1)              # cheap pre-filter
    z = np.zeros(len(agg))
    for i, (c, e, v, q) in enumerate(zip(agg.cw, agg.e, agg['var'], zn)):
        if abs(q) >= 1.0:
            m_ = e if e > 0 else UNSEEN_MEAN
            z[i] = nb_tail_z(c, m_, max(v, m_))
    agg['z'] = z
    return agg


def cpu_delta(M, t0, t1):
    b = M[(M.TimeStamp < t0) & (M.TimeStamp >= t0 - CPU_HIST_S)].groupby('service')['CpuUsageRate(%)'].quantile(0.9)
    w = M[(M.TimeStamp >= t0) & (M.TimeStamp < t1)].groupby('service')['CpuUsageRate(%)'].max()
    return (w - b).dropna()


def service_features(Tb, Lb, Tw, Lw, M, t0, t1, key, use_cpu=True):
    g = log_key_scores(Tb, Lb, Tw, Lw, 'level')      # per (service, op, severity)
    k = log_key_scores(Tb, Lb, Tw, Lw, key)          # per (service, op, template/location)
    lvl = pd.concat([Lb, Lw]).drop_duplicates([key]).set_index(key)['level']
    k['info'] = k[key].map(lvl).isin(INFO_LEVELS).values
    g['info'] = g['level'].isin(INFO_LEVELS).values
    F = pd.DataFrame(index=sorted(set(Tw.service) | set(Lw.service) | set(M.service)))
    F['err_up'] = pd.concat([g[~g['info']], k[~k['info']]]).groupby('service').z.max().clip(lower=0)
    F['info_drop'] = (-pd.concat([g[g['info']], k[k['info']]]).groupby('service').z.min()).clip(lower=0)
    F['cpu_pp'] = cpu_delta(M, t0, t1) if use_cpu else 0.0
    return F.fillna(0.0)


def score(F):
    return ((F.err_up - Z_FLOOR).clip(lower=0) + (F.info_drop - Z_FLOOR).clip(lower=0)
            + ((F.cpu_pp - CPU_FLOOR_PP) / CPU_SCALE_PP).clip(lower=0))


def graph_adjust(s, edges, lam):
    """A caller whose callee is anomalous is discounted by lam x the callee's score."""
    out = s.copy()
    for (a, b) in edges:
        if a in s.index and b in s.index and s[b] > 0:
            out[a] = min(out[a], s[a] - lam * s[b])
    return out


# ----------------------------------------------------------------------------------------------
# Pipeline: chronological replay, onset detection, ranking
# ----------------------------------------------------------------------------------------------
def run(L, T, M, cases, key='key', anchor='onset', lam=GRAPH_LAMBDA, use_cpu=True, history=True, own_pre=True):
    Lff, Tff = L[L.file == 'ff'], T[T.file == 'ff']
    HT, HL = [Tff], [Lff]
    rows = []
    for _, c in cases.sort_values('inject_unix_utc').iterrows():
        files = c.minute_files.split(';')
        t = T[T.file.isin(files)].drop_duplicates(['TraceID', 'SpanID'])
        l = L[L.file.isin(files)].drop_duplicates(['t', 'PodName', 'msg'])
        hT = pd.concat(HT) if history else Tff
        hL = pd.concat(HL) if history else Lff
        ws, we = t.st.min(), t.st.max()
        alerted = None
        if anchor == 'onset':
            # probe [tau, tau+60s) against everything before tau; first probe with top score >= theta
            best = (-1, ws + PROBE_STEP_S); tau = ws + PROBE_STEP_S
            while tau <= we - PROBE_WIN_S:
                F = service_features(pd.concat([hT, t[t.st < tau]]), pd.concat([hL, l[l.t < tau]]),
                                     t[(t.st >= tau) & (t.st < tau + PROBE_WIN_S)], l[(l.t >= tau) & (l.t < tau + PROBE_WIN_S)],
                                     M, tau, tau + PROBE_WIN_S + 30, key, use_cpu)
                top = score(F).max()
                if top >= ONSET_THETA:
                    alerted = tau; break
                if top > best[0]:
                    best = (top, tau)
                tau += PROBE_STEP_S
            onset = alerted if alerted is not None else best[1]
        else:
            onset = float(c.inject_unix_utc)
        Tb = pd.concat([hT, t[t.st < onset]]) if own_pre else hT
        Lb = pd.concat([hL, l[l.t < onset]]) if own_pre else hL
        Tw, Lw = t[t.st >= onset], l[l.t >= onset]
        F = service_features(Tb, Lb, Tw, Lw, M, onset, onset + 180, key, use_cpu)
        s = score(F)
        par = Tw[['SpanID', 'service']].rename(columns={'SpanID': 'ParentID', 'service': 'caller'})
        e = Tw[['ParentID', 'service']].merge(par, on='ParentID')
        edges = set(map(tuple, e.loc[e.caller != e.service, ['caller', 'service']].values))
        s = graph_adjust(s, edges, lam)
        raw = F.err_up + F.info_drop + F.cpu_pp / CPU_SCALE_PP              # tie-break only
        order = sorted(s.index, key=lambda x: (-s[x], -raw[x], x))
        rank = order.index(c.root_cause_service) + 1 if c.root_cause_service in order else len(order) + 1
        rc = c.root_cause_service
        rows.append(dict(case=c.case_id, fault=c.fault_type, truth=rc, rank=rank,
                         top3=', '.join(f'{x[3:]}({s[x]:.1f})' for x in order[:3]),
                         onset_s=round(onset - ws), inject_s=round(c.inject_unix_utc - ws),
                         alert='yes' if alerted is not None else ('-' if anchor != 'onset' else 'no'),
                         rc_err=round(F.err_up.get(rc, 0), 1), rc_drop=round(F.info_drop.get(rc, 0), 1),
                         rc_cpu=round(F.cpu_pp.get(rc, 0), 1)))
        HT.append(t[t.st < onset]); HL.append(l[l.t < onset])
    return pd.DataFrame(rows)


def summary(df):
    r = df['rank']
    return 'top1 %5.1f%%  top3 %5.1f%%  top5 %5.1f%%  mean rank %.2f  (n=%d)' % (
        100 * (r <= 1).mean(), 100 * (r <= 3).mean(), 100 * (r <= 5).mean(), r.mean(), len(r))


def main():
    cases = pd.read_csv(os.path.join(DATA, 'labels', 'cases.csv'))
    L, T, M, m = load_all()
    print(f'loaded {len(L)} log rows, {len(T)} span rows, {len(M)} metric rows; miner: {len(m.cl)} clusters, '
          f'{L.tpl.nunique()} templates, {L[L["loc"] != ""]["loc"].nunique()} source locations')
    pd.set_option('display.width', 250); pd.set_option('display.max_colwidth', 120)

    print('\n=== MAIN: data-derived onset, key = source location (else template), lambda = 1 ===')
    df = run(L, T, M, cases)
    print(df.to_string(index=False))
    print('\nOVERALL ', summary(df))
    for ft, d in df.groupby('fault'):
        print('%-15s' % ft, summary(d))
    print('alerted (a probe crossed theta):', (df.alert == 'yes').sum(), 'of', len(df),
          '| onset - inject (s): median %.0f, min %.0f, max %.0f' % (
              (df.onset_s - df.inject_s).median(), (df.onset_s - df.inject_s).min(), (df.onset_s - df.inject_s).max()))

    print('\n=== COMPARISONS / ABLATIONS (one change each) ===')
    variants = [
        ('inject-anchored window (uses inject_time)', dict(anchor='inject')),
        ('scry template id only (no source location)', dict(key='tpl')),
        ('scry template id only, inject-anchored', dict(key='tpl', anchor='inject')),
        ('no graph discount (lambda = 0)', dict(lam=0.0)),
        ('lambda = 0.5', dict(lam=0.5)),
        ('no CPU metric', dict(use_cpu=False)),
        ('baseline = fault-free minute + own pre-onset only', dict(history=False)),
        ('baseline = fault-free minute only', dict(history=False, own_pre=False)),
    ]
    for name, kw in variants:
        d = run(L, T, M, cases, **kw)
        miss = ' '.join(f"{r.case[-4:]}:{r['rank']}" for _, r in d[d['rank'] > 1].iterrows())
        print('%-52s %s   misses: %s' % (name, summary(d), miss or '-'))


if __name__ == '__main__':
    main()
