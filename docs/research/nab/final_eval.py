"""Final evaluation + sensitivity of the NovelExtreme detector (vectorized twin of scry_nab.py)."""
import numpy as np, harness as h, nab_score as ns, det_v4 as V, json
PROFS = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]
BASE = dict(scales=(1, 6, 24), L=4000, warm=150, c=0.2, K=25)
SHIP = {"standard": 0.10, "reward_low_FP_rate": 0.14, "reward_low_FN_rate": 0.10}

def tied(params, theta, prof):
    """alert level = scoring threshold = theta (what a deployed daemon does)."""
    p = dict(BASE); p.update(params); p["thr"] = theta
    sc = {rel: V.detect(d["value"], d["ts"], **p) for rel, d in h.CORPUS.items()}
    return ns.score_fixed(h.PREP, sc, prof, theta), sc

def best_theta(params, prof, grid=(0.06, 0.08, 0.09, 0.10, 0.12, 0.14, 0.18, 0.25)):
    r = [(tied(params, t, prof)[0][1], t) for t in grid]
    return max(r)

if __name__ == "__main__":
    print("== shipped config", BASE, "thresholds", SHIP)
    for prof in PROFS:
        (raw, nz, per), sc = tied({}, SHIP[prof], prof)
        t_opt, raw_o, nz_o = ns.score_optimized(h.PREP, sc, prof)
        bt = best_theta({}, prof)
        print("%-20s fixed thr=%.2f: %.2f | NAB-sweeper on this output: %.2f @%.4f | tied-grid best: %.2f @%.2f"
              % (prof, SHIP[prof], nz, nz_o, t_opt, bt[0], bt[1]))
        cb = ns.category_breakdown(h.PREP, per, prof)
        for cat, v in cb.items():
            print("    %-24s norm=%7.2f  windows %d/%d  FP rows %d" % (cat, v["norm"], v["tp_windows"], v["windows"], v["fp_rows"]))
    print("== sensitivity (one parameter varied, others at shipped; fixed shipped thresholds std/lowFP/lowFN)")
    grid = [("K", [0, 6, 12, 18, 25, 31, 37, 50, 75, 100]),
            ("L", [1000, 2000, 3000, 4000, 5000, 6000, 8000, 10**7]),
            ("warm", [0, 50, 100, 150, 200, 250, 300, 400]),
            ("scales", [(1,), (1, 6), (1, 24), (1, 6, 24), (1, 3, 12), (1, 6, 24, 96), (1, 12, 48), (1, 6, 24, 144)])]
    for name, vals in grid:
        for v in vals:
            row = []
            for prof in PROFS:
                row.append(tied({name: v}, SHIP[prof], prof)[0][1])
            print("  %-6s=%-16s std=%6.2f lowFP=%6.2f lowFN=%6.2f" % (name, v, *row), flush=True)
    print("== threshold sensitivity (tied alert=threshold)")
    for t in [0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.11, 0.12, 0.14, 0.16, 0.18, 0.22, 0.3]:
        row = [tied({}, t, prof)[0][1] for prof in PROFS]
        print("  thr=%.2f (excess e*=%.4f of range) std=%6.2f lowFP=%6.2f lowFN=%6.2f" % (t, -0.2*np.log(1-t), *row), flush=True)
