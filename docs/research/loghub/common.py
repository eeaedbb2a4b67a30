"""Data loading and faithful GA / PA evaluator for the Loghub-2k corrected ground truth."""
import csv
import os
from collections import defaultdict

DATA = "/work/shared/data/loghub"
SYSTEMS = ["HDFS", "BGL", "Spark", "Zookeeper", "OpenStack", "Apache", "Linux", "Android"]


def load(system):
    d = os.path.join(DATA, system)
    with open(os.path.join(d, f"{system}_2k.log"), "rb") as f:
        raw = f.read().decode("utf-8")
    lines = raw.split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = []
    with open(os.path.join(d, f"{system}_2k.log_structured_corrected.csv"), newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append(r)
    assert len(lines) == len(rows) == 2000, (system, len(lines), len(rows))
    contents = [r["Content"] for r in rows]
    templates = [r["EventTemplate"] for r in rows]
    return lines, contents, templates


def grouping_accuracy(gt_labels, pred_labels):
    """GA: message correct iff the predicted group holding it == its ground-truth group (as sets)."""
    n = len(gt_labels)
    gt_groups = defaultdict(set)
    pr_groups = defaultdict(set)
    for i, (g, p) in enumerate(zip(gt_labels, pred_labels)):
        gt_groups[g].add(i)
        pr_groups[p].add(i)
    correct = 0
    for p, members in pr_groups.items():
        # all members must share one gt label and that gt group must be exactly this set
        g0 = gt_labels[next(iter(members))]
        if gt_groups[g0] == members:
            correct += len(members)
    return correct / n


def parsing_accuracy(gt_templates, pred_templates):
    ok = sum(1 for g, p in zip(gt_templates, pred_templates) if g.strip() == p.strip())
    return ok / len(gt_templates)


def error_report(gt_labels, pred_labels, texts, max_groups=15, per=3):
    """List the largest mis-grouped predicted groups and ground-truth groups."""
    gt_groups = defaultdict(list)
    pr_groups = defaultdict(list)
    for i, (g, p) in enumerate(zip(gt_labels, pred_labels)):
        gt_groups[g].append(i)
        pr_groups[p].append(i)
    out = []
    bad = []
    for g, mem in gt_groups.items():
        preds = defaultdict(list)
        for i in mem:
            preds[pred_labels[i]].append(i)
        ok = len(preds) == 1 and set(pr_groups[next(iter(preds))]) == set(mem)
        if not ok:
            bad.append((len(mem), g, preds))
    bad.sort(key=lambda x: -x[0])
    for n, g, preds in bad[:max_groups]:
        out.append(f"GT[{n}] {g!r}")
        for p, mem in list(preds.items())[:4]:
            extra = len(pr_groups[p]) - len(mem)
            out.append(f"   pred {p!r} has {len(mem)} of these (+{extra} others)")
            for i in mem[:per]:
                out.append(f"      {texts[i][:200]!r}")
    return "\n".join(out)
