"""Reference streaming implementation of the v2 NAB detector: "robust multi-feature novel extremes
with a short gap" (spec for the Rust port).

Changes from v1 (scry_nab.py, mean of last k for k in {1, 6, 24}, reference = previous L rows):
  1. The smoothed features are rolling MEDIANS (of the last 8 and the last 24 values) rather than means.
     A median ignores isolated spikes, so its history range stays narrow in spiky series, and a
     sustained change of level inside the raw range (Twitter volume, ad exchange, traffic) becomes a
     new extreme of the median feature. The raw value (k = 1) is kept to catch single spikes.
  2. Gap G: the reference range of a feature at row t is the min/max of that feature over rows
     t-L .. t-G, not t-L .. t-1. With G = 1 this is v1's reference. With G = 6, a slow drift or ramp
     that makes a new extreme a little at a time still builds up excess against the range as it was
     G-1 rows earlier.

Algorithm (per series, per new value x_t, t = 0, 1, 2, ...). Constants: L = 4000, G = 6, K_MED = (8, 24),
C = 0.2, WARM = 150, COOLDOWN = 25, alert level = the profile threshold (0.10 standard and low-FN,
0.14 low-FP):
  features at row t (window = the last k values, or all values so far if t < k-1):
      f_0(t) = x_t
      f_1(t) = median(x_{t-7..t})      (median of an even count = mean of the two middle values)
      f_2(t) = median(x_{t-23..t})
  for each feature j:
      reference set   = { f_j(s) : max(0, t-L) <= s <= t-G }    (feature values already computed)
      if the set is empty: e_j = 0
      else hi = max(set), lo = min(set), R = hi - lo
           e_j = max(0, f_j(t) - hi, lo - f_j(t)) / (R + 1e-9 * (|hi| + |lo| + 1))
  raw = max_j e_j  if t >= WARM else 0
  s   = 1 - exp(-raw / C)
  cooldown: if an alert was raised at row t_a and t - t_a <= COOLDOWN: s = 0 (row is not an alert)
            else if s >= alert: raise an alert, t_a = t
  emit s

State per series: ring buffer of the last 24 values (and a sorted copy for the medians); per feature
a ring of its last G-1 values that are not yet in the reference (pending entry), and two monotone
deques (sliding max / min over the reference rows). Per point: O(24) for the medians (sorted-array
insert and delete), amortized O(1) per deque, so O(1) overall. Memory: 24 + 3*(G-1) + the deques
(typically a few dozen entries, at most L per deque, i.e. bounded by 6*L pairs (index, value)).
"""
import bisect
import math
from collections import deque

import numpy as np

DEFAULTS = dict(L=4000, G=6, k_med=(8, 24), c=0.2, warm=150, K=25, alert=0.10)
THRESHOLDS = {"standard": 0.10, "reward_low_FP_rate": 0.14, "reward_low_FN_rate": 0.10}


class MonoDeque:
    """Sliding max (sign=+1) or min (sign=-1) of (index, value) pairs pushed in increasing index order."""

    def __init__(self, sign):
        self.sign, self.q = sign, deque()

    def push(self, i, v):
        q, sg = self.q, self.sign
        while q and sg * q[-1][1] <= sg * v:   # drop dominated entries
            q.pop()
        q.append((i, v))

    def evict_before(self, i_min):
        q = self.q
        while q and q[0][0] < i_min:
            q.popleft()

    def top(self):
        return self.q[0][1] if self.q else None


class FeatureNovelty:
    """Excess of a feature beyond the [min, max] of its own values at rows t-L .. t-G."""

    def __init__(self, L, G):
        self.L, self.G = L, G
        self.pending = deque()          # (t, f) not yet in the reference (the last G-1 rows)
        self.hi, self.lo = MonoDeque(+1), MonoDeque(-1)

    def update(self, t, f):
        # the value computed at row t-G enters the reference set now
        while self.pending and self.pending[0][0] <= t - self.G:
            s, v = self.pending.popleft()
            self.hi.push(s, v)
            self.lo.push(s, v)
        self.hi.evict_before(t - self.L)
        self.lo.evict_before(t - self.L)
        e = 0.0
        hi, lo = self.hi.top(), self.lo.top()
        if hi is not None:
            R = hi - lo
            e = max(0.0, f - hi, lo - f) / (R + 1e-9 * (abs(hi) + abs(lo) + 1.0))
        self.pending.append((t, f))
        return e


class RollingMedian:
    """Median of the last k values (of all values so far while fewer than k): sorted array + FIFO."""

    def __init__(self, k):
        self.k, self.fifo, self.sorted = k, deque(), []

    def update(self, x):
        self.fifo.append(x)
        bisect.insort(self.sorted, x)
        if len(self.fifo) > self.k:
            old = self.fifo.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
        a, n = self.sorted, len(self.sorted)
        return a[n // 2] if n % 2 else 0.5 * (a[n // 2 - 1] + a[n // 2])


class NoveltyDetectorV2:
    def __init__(self, L=4000, G=6, k_med=(8, 24), c=0.2, warm=150, K=25, alert=0.10):
        self.c, self.warm, self.K, self.alert = c, warm, K, alert
        self.medians = [RollingMedian(k) for k in k_med]
        self.nov = [FeatureNovelty(L, G) for _ in range(1 + len(k_med))]
        self.t = 0
        self.last_alert = None

    def raw(self, x):
        """Feature excess max_j e_j for the new value (advances the state)."""
        t = self.t
        feats = [x] + [m.update(x) for m in self.medians]
        r = 0.0
        for f, nv in zip(feats, self.nov):
            e = nv.update(t, f)
            if e > r:
                r = e
        return r if t >= self.warm else 0.0

    def update(self, value, timestamp=None):
        """Score in [0, 1) for the new row; the timestamp is not used (regular sampling assumed)."""
        t = self.t
        s = 1.0 - math.exp(-self.raw(float(value)) / self.c)
        if self.last_alert is not None and t - self.last_alert <= self.K:
            s = 0.0
        elif s >= self.alert:
            self.last_alert = t
        self.t += 1
        return s


def detect(x, ts=None, **params):
    p = dict(DEFAULTS)
    p.update(params)
    d = NoveltyDetectorV2(**p)
    return np.array([d.update(v) for v in x])
