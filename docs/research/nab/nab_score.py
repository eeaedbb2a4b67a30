"""Faithful re-implementation of NAB v1.1 scoring (nab/sweeper.py, nab/runner.py).

Usage as a library:
    corpus = load_corpus()                      # data + windows
    prep = prepare(corpus)                      # per-row sweep scores / window ids
    score_fixed(prep, scores_by_file, "standard", thr)   -> (raw, normalized, per_file)
    score_optimized(prep, scores_by_file, "standard")    -> (thr, raw, normalized)

Semantics (mirrors sweeper.calcSweepScore / calcScoreByThreshold):
  * probationary length = min(floor(0.15 n), 750); those rows are dropped entirely.
  * in-window row i: sweep = tpW * sigma(-(right - i + 1)/width) / sigma(-1)
    with sigma(y) = 2/(1+exp(5y)) - 1  (scaledSigmoid; y > 3 -> -1)
  * out-of-window row: fpW * (-1) if no preceding window,
    else fpW * sigma(|prevRight - i| / (prevWidth - 1))
  * a window's contribution = max(-fnW, max sweep of detected rows) (earliest wins)
    (windows with no scorable rows contribute nothing, exactly as upstream)
  * FP contribution = sum of sweep of detected out-of-window rows
  * detection: score >= threshold.
  * normalized = 100 (S - S_null)/(S_perfect - S_null),
    S_null = score of never-firing detector, S_perfect = tpW * #windows (all windows).
"""
import json
import math
import os
import sys

import numpy as np
import pandas as pd

NAB_DIR = "/work/shared/data/nab"
PROFILES = {
    "standard": dict(tp=1.0, fn=1.0, fp=0.11),
    "reward_low_FP_rate": dict(tp=1.0, fn=1.0, fp=0.22),
    "reward_low_FN_rate": dict(tp=1.0, fn=2.0, fp=0.11),
}


def scaled_sigmoid(y):
    y = np.asarray(y, dtype=float)
    out = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, out)


def load_corpus(nab_dir=NAB_DIR):
    with open(os.path.join(nab_dir, "labels", "combined_windows.json")) as f:
        windows = json.load(f)
    corpus = {}
    for rel in sorted(windows):
        df = pd.read_csv(os.path.join(nab_dir, "data", rel))
        ts = pd.to_datetime(df["timestamp"])
        wins = []
        for a, b in windows[rel]:
            ia = int(np.where(ts == pd.Timestamp(a))[0][0])
            ib = int(np.where(ts == pd.Timestamp(b))[0][0])
            wins.append((ia, ib))
        corpus[rel] = dict(ts=ts.values, value=df["value"].values.astype(float), windows=wins)
    return corpus


def prepare(corpus):
    """Per-file arrays independent of the profile except through weights.
    Stores unweighted sweep value and window id for each scorable row."""
    prep = {}
    gid = 0
    nwin_total = 0
    for rel, d in corpus.items():
        n = len(d["value"])
        prob = int(min(math.floor(0.15 * n), 0.15 * 5000))
        # note: upstream compares i >= 750.0 (float) - same as int for integers
        unw = np.empty(n)
        win = np.full(n, -1, dtype=np.int64)
        in_win = np.zeros(n, dtype=bool)
        prev_right = None
        prev_width = None
        wi = 0
        wins = d["windows"]
        idx = np.arange(n)
        # vectorised per segment
        cur = 0
        for k, (a, b) in enumerate(wins):
            width = float(b - a + 1)
            # out-of-window segment [cur, a)
            seg = idx[cur:a]
            if prev_right is None:
                unw[cur:a] = -1.0
            else:
                unw[cur:a] = scaled_sigmoid(np.abs(prev_right - seg) / (prev_width - 1.0))
            seg = idx[a:b + 1]
            unw[a:b + 1] = scaled_sigmoid(-(b - seg + 1) / width) / scaled_sigmoid(-1.0)
            win[a:b + 1] = gid + k
            in_win[a:b + 1] = True
            prev_right, prev_width = b, width
            cur = b + 1
        seg = idx[cur:]
        if prev_right is None:
            unw[cur:] = -1.0
        else:
            unw[cur:] = scaled_sigmoid(np.abs(prev_right - seg) / (prev_width - 1.0))
        scorable = idx >= prob
        prep[rel] = dict(n=n, prob=prob, unw=unw, win=win, in_win=in_win,
                         scorable=scorable, win_ids=list(range(gid, gid + len(wins))))
        gid += len(wins)
        nwin_total += len(wins)
    prep["__meta__"] = dict(nwin=nwin_total)
    return prep


def files(prep):
    return [k for k in prep if k != "__meta__"]


def file_score(p, s, prof, thr):
    """Raw score + counts for one file at threshold thr."""
    w = PROFILES[prof]
    m = p["scorable"]
    det = (s >= thr) & m
    inw = p["in_win"]
    fp_rows = det & ~inw
    fp = float(np.sum(p["unw"][fp_rows]) * w["fp"])
    raw = fp
    tp = fn = 0
    for wid in p["win_ids"]:
        rows = (p["win"] == wid) & m
        if not rows.any():
            continue  # window fully in probationary period: ignored upstream
        d = rows & det
        if d.any():
            raw += max(-w["fn"], float(np.max(p["unw"][d])) * w["tp"])
            tp += 1
        else:
            raw += -w["fn"]
            fn += 1
    return raw, dict(tp_windows=tp, fn_windows=fn, fp_rows=int(fp_rows.sum()),
                     tp_rows=int((det & inw).sum()))


def null_and_perfect(prep, prof):
    w = PROFILES[prof]
    s_null = 0.0
    for rel in files(prep):
        p = prep[rel]
        for wid in p["win_ids"]:
            if ((p["win"] == wid) & p["scorable"]).any():
                s_null -= w["fn"]
    s_perfect = w["tp"] * prep["__meta__"]["nwin"]
    return s_null, s_perfect


def normalize(raw, prep, prof):
    s_null, s_perf = null_and_perfect(prep, prof)
    return 100.0 * (raw - s_null) / (s_perf - s_null)


def score_fixed(prep, scores, prof, thr):
    per = {}
    total = 0.0
    for rel in files(prep):
        r, c = file_score(prep[rel], np.asarray(scores[rel], float), prof, thr)
        per[rel] = (r, c)
        total += r
    return total, normalize(total, prep, prof), per


def sweep(prep, scores, prof):
    """Corpus-wide threshold sweep exactly like calcScoreByThreshold.
    Returns arrays (thresholds descending, raw scores)."""
    w = PROFILES[prof]
    S, U, W = [], [], []
    for rel in files(prep):
        p = prep[rel]
        m = p["scorable"]
        S.append(np.asarray(scores[rel], float)[m])
        U.append(p["unw"][m])
        W.append(p["win"][m])
    S = np.concatenate(S); U = np.concatenate(U); W = np.concatenate(W)
    order = np.argsort(-S, kind="stable")
    S = S[order]; U = U[order]; W = W[order]
    delta = np.zeros(len(S))
    fpm = W < 0
    delta[fpm] = U[fpm] * w["fp"]
    wm = ~fpm
    if wm.any():
        df = pd.DataFrame({"w": W[wm], "v": U[wm] * w["tp"]})
        cm = df.groupby("w")["v"].cummax().values
        cm = np.maximum(cm, -w["fn"])
        prev = pd.Series(cm).groupby(df["w"].values).shift(1).fillna(-w["fn"]).values
        delta[wm] = cm - prev
    base, _ = null_and_perfect(prep, prof)
    cum = base + np.cumsum(delta)
    # evaluate at the end of each group of equal scores
    last = np.r_[S[1:] != S[:-1], True]
    thr = np.r_[1.1, S[last]]
    raw = np.r_[base, cum[last]]
    return thr, raw


def score_optimized(prep, scores, prof):
    thr, raw = sweep(prep, scores, prof)
    k = int(np.argmax(raw))  # first max, like sorted(..., reverse=True)[0] (stable)
    return float(thr[k]), float(raw[k]), normalize(float(raw[k]), prep, prof)


def category(rel):
    return rel.split("/")[0]


def report(prep, scores, thresholds=None, optimize=True, per_category=True, out=sys.stdout):
    res = {}
    for prof in PROFILES:
        line = "%-20s" % prof
        if thresholds is not None:
            raw, nz, per = score_fixed(prep, scores, prof, thresholds[prof])
            line += " fixed(thr=%.4f): raw=%8.3f  norm=%6.2f" % (thresholds[prof], raw, nz)
            res[(prof, "fixed")] = nz
            if per_category:
                res[(prof, "per")] = per
        if optimize:
            t, raw, nz = score_optimized(prep, scores, prof)
            line += " | optimized(thr=%.4f): raw=%8.3f  norm=%6.2f" % (t, raw, nz)
            res[(prof, "opt")] = nz
            res[(prof, "opt_thr")] = t
        print(line, file=out)
    return res


def category_breakdown(prep, per, prof):
    """Normalized score per category from per-file raw results."""
    cats = {}
    w = PROFILES[prof]
    for rel, (r, c) in per.items():
        cat = category(rel)
        p = prep[rel]
        nw = len(p["win_ids"])
        nnull = sum(1 for wid in p["win_ids"] if ((p["win"] == wid) & p["scorable"]).any())
        a = cats.setdefault(cat, [0.0, 0.0, 0.0, 0, 0])
        a[0] += r; a[1] += -w["fn"] * nnull; a[2] += w["tp"] * nw
        a[3] += c["tp_windows"]; a[4] += c["fp_rows"]
    out = {}
    for cat, (r, sn, sp, tp, fp) in sorted(cats.items()):
        out[cat] = dict(raw=r, norm=(100 * (r - sn) / (sp - sn) if sp > sn else float("nan")),
                        tp_windows=tp, fp_rows=fp, windows=int(sp / w["tp"]))
    return out
