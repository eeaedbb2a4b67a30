"""Reference streaming implementation of the proposed detector ("multi-scale novel-extreme").

Pure Python, one object per series, O(#scales * k_max) worst case per point
(amortized O(#scales) for the deques).  This file is the spec for the Rust port;
`detect()` wraps it for the NAB harness.

Algorithm (per series, per new value x_t, t = 0,1,2,...):
  for each scale k in SCALES (default 1, 6, 24):
      m_k(t) = mean(x_{t-k+1..t})            (mean of the available values if t < k-1)
      hi_k = max{m_k(j) : t-L <= j <= t-1}   (sliding max over previous L feature values)
      lo_k = min{ same }
      R_k  = hi_k - lo_k
      e_k  = max(0, m_k - hi_k, lo_k - m_k) / (R_k + 1e-9*(|hi_k|+|lo_k|+1))
      push m_k(t) into the sliding max/min structures (after computing e_k)
  raw = max_k e_k  if t >= WARM else 0            (t = 0: no history -> raw = 0)
  s   = 1 - exp(-raw / C)                         (calibrated score in [0,1))
  suppression: if an alert was raised at t_a with t - t_a <= K: s = 0
               else if s >= ALERT: raise alert, t_a = t
  emit s
"""
import math
from collections import deque

import numpy as np

DEFAULTS = dict(scales=(1, 6, 24), L=4000, warm=150, c=0.2, alert=0.1, K=25)


class MonoDeque:
    """Sliding-window max (sign=+1) or min (sign=-1) of the last L pushed values."""
    def __init__(self, L, sign):
        self.L, self.sign, self.q = L, sign, deque()

    def push(self, t, v):
        q, sg = self.q, self.sign
        while q and sg * q[-1][1] <= sg * v:
            q.pop()
        q.append((t, v))

    def get(self, t):
        """Extreme over values pushed at times t-L .. t-1 (call before pushing time t)."""
        q = self.q
        while q and q[0][0] < t - self.L:
            q.popleft()
        return q[0][1] if q else None


class NovelExtremeDetector:
    def __init__(self, scales=(1, 6, 24), L=4000, warm=150, c=0.2, alert=0.1, K=25):
        self.scales, self.L, self.warm, self.c, self.alert, self.K = tuple(scales), L, warm, c, alert, K
        self.kmax = max(scales)
        self.buf = deque(maxlen=self.kmax)   # last kmax raw values
        self.hi = [MonoDeque(L, +1) for _ in scales]
        self.lo = [MonoDeque(L, -1) for _ in scales]
        self.t = 0
        self.last_alert = None

    def update(self, x):
        t = self.t
        self.buf.append(float(x))
        raw = 0.0
        vals = list(self.buf)
        for j, k in enumerate(self.scales):
            w = vals[-k:]
            m = sum(w) / len(w)
            hi, lo = self.hi[j].get(t), self.lo[j].get(t)
            if hi is not None:
                R = hi - lo
                e = max(0.0, m - hi, lo - m) / (R + 1e-9 * (abs(hi) + abs(lo) + 1.0))
                if t >= self.warm and e > raw:
                    raw = e
            self.hi[j].push(t, m)
            self.lo[j].push(t, m)
        s = 1.0 - math.exp(-raw / self.c)
        if self.last_alert is not None and t - self.last_alert <= self.K:
            s = 0.0
        elif s >= self.alert:
            self.last_alert = t
        self.t += 1
        return s


def detect(x, ts=None, **params):
    p = dict(DEFAULTS); p.update(params)
    d = NovelExtremeDetector(**p)
    return np.array([d.update(v) for v in x])
