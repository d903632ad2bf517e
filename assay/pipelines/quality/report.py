"""Write a quality report as Markdown (for people), JSON (for tools) and a PNG plot."""
from __future__ import annotations

import json
import os

from assay.groundwork.atomic import atomic_path, write_bytes_atomic
from assay.pipelines.quality.metrics import EXACT_BIN, JACCARD_BINS, QualityReport

REPORT_MD, REPORT_JSON, REPORT_PNG = "quality.md", "quality.json", "quality.png"


def to_markdown(report: QualityReport, failures: list[str] | None = None) -> str:
    m = report.keep_metrics
    keep = ", ".join(report.settings["keep"])
    lines = [f"# Quality report: {os.path.basename(report.corpus.rstrip('/'))}", "",
             f"Corpus: `{report.corpus}`. Categories meant to be kept: **{keep}**. "
             f"Copies at Jaccard >= {report.settings['merge_jaccard']} count as one page for recall.", "",
             "| metric | value |", "|---|---:|",
             f"| precision (kept pages in {keep}) | {m['precision']:.3f} ({m['kept_in_keep_set']}/{m['kept_pages']}) |",
             f"| recall (distinct {keep} pages kept) | {m['recall']:.3f} ({m['units_kept']}/{m['units']}) |",
             f"| F1 | {m['f1']:.3f} |", "",
             "## Kept per category", "",
             "| category | pages | kept | kept share | dropped by |", "|---|---:|---:|---:|---|"]
    for cat, row in report.categories.items():
        dropped = ", ".join(f"{s} {n}" for s, n in row["dropped_by"].items())
        lines.append(f"| {cat} | {row['pages']} | {row['kept']} | {row['kept_share']:.3f} | {dropped} |")
    lines += rubric_markdown(report.rubric)
    lines += ["", "## Deduplication by Jaccard of the pair", "",
              "Pairs whose two pages both reached dedup (eligible); caught = one of them dropped as a duplicate. "
              "At <= 0.3 a catch is a wrong merge.", "",
              "| Jaccard | pairs | eligible | caught | rate |", "|---|---:|---:|---:|---:|"]
    for label in [b[0] for b in JACCARD_BINS] + [EXACT_BIN]:
        row = report.dedup[label]
        rate = "-" if row["rate"] is None else f"{row['rate']:.3f}"
        lines.append(f"| {label} | {row['pairs']} | {row['eligible']} | {row['caught']} | {rate} |")
    if report.merges:
        lines += ["", "## Merges the run made, by the measured Jaccard of the merged pair", "",
                  "Every page fuzzy dedup dropped, against the page it kept (word 5-grams of the extracted texts), "
                  "over the whole corpus. A merge at <= 0.3 merged pages that are not near-duplicates.", "",
                  "| Jaccard | merges |", "|---|---:|"]
        lines += [f"| {label} | {n} |" for label, n in report.merges.items()]
        if report.least_similar_merges:
            lines += ["", "Least similar merges: " + "; ".join(
                f"`{m['url'] or m['id']}` into `{m['survivor_url']}` ({m['jaccard']:.2f})"
                for m in report.least_similar_merges[:3])]
    lines += ["", f"## False drops ({sum(g['count'] for g in report.false_drops)} pages meant to be kept)", ""]
    if report.false_drops:
        lines += ["| stage | reason | pages | examples |", "|---|---|---:|---|"]
        for g in report.false_drops:
            ex = "<br>".join(f"`{e['url']}`" for e in g["examples"])
            lines.append(f"| {g['stage']} | {g['reason']} | {g['count']} | {ex} |")
    else:
        lines.append("none")
    if report.missing or report.unlabelled:
        lines += ["", f"Records with no outcome (silent loss): {len(report.missing)}; "
                      f"outcomes with no label: {report.unlabelled}."]
    if failures is not None:
        lines += ["", "## Bounds", ""]
        lines += [f"- FAILED: {f}" for f in failures] if failures else ["all bounds given were met"]
    return "\n".join(lines) + "\n"


def _pct(row: dict) -> str:
    return "-" if row["kept_share"] is None else f"{row['kept_share']:.3f} ({row['kept']}/{row['pages']})"


def rubric_markdown(r: dict) -> list[str]:
    """The rated pages' section: judged by each page's rubric rating, not by its source."""
    if not r:
        return []
    lines = ["", f"## Rated pages (rubric score >= {r['min_score']} is teaching)", "",
             f"{r['rated']} pages rated by reading them; {r['teaching']} score >= {r['min_score']} "
             f"(base rate {r['base_rate']:.3f}).", "", "| metric | value |", "|---|---:|",
             f"| precision (kept rated pages scoring >= {r['min_score']}) | {r['precision']:.3f} "
             f"({r['kept_teaching']}/{r['kept']}) |",
             f"| recall (pages scoring >= {r['min_score']} kept) | {r['recall']:.3f} "
             f"({r['kept_teaching']}/{r['teaching']}) |",
             f"| F1 | {r['f1']:.3f} |",
             f"| pages rated 0-1 kept | {_pct(r['low_kept'])} |",
             f"| pages rated ephemeral kept | {_pct(r['ephemeral_kept'])} |", "",
             "| score | " + " | ".join(r["by_score"]) + " |", "|---|" + "---:|" * len(r["by_score"]),
             "| kept | " + " | ".join(_pct(v) for v in r["by_score"].values()) + " |", "",
             "| rated category | kept |", "|---|---:|"]
    lines += [f"| {c} | {_pct(v)} |" for c, v in r["by_category"].items()]
    lines += ["", "| source | pages | teaching | kept | precision | recall | rated 0-1 kept |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    lines += [f"| {s} | {v['pages']} | {v['teaching']} | {v['kept']} | {fmt(v['precision'])} | {fmt(v['recall'])} "
              f"| {fmt(v['low_kept_share'])} |" for s, v in r["by_source"].items()]
    return lines


def plot(report: QualityReport, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    cats = list(report.categories)
    shares = [report.categories[c]["kept_share"] for c in cats]
    keep = set(report.settings["keep"])
    left.bar(cats, shares, color=["tab:green" if c in keep else "tab:red" for c in cats])
    left.set_ylim(0, 1)
    left.set_ylabel("share kept")
    left.set_title("kept per category (green: meant to be kept)")
    left.tick_params(axis="x", rotation=30)
    labels = [b[0] for b in JACCARD_BINS] + [EXACT_BIN]
    rates = [report.dedup[b]["rate"] or 0.0 for b in labels]
    right.bar(labels, rates, color="tab:blue")
    right.set_ylim(0, 1)
    right.set_ylabel("pairs caught")
    right.set_title("dedup by Jaccard of the pair")
    right.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def write_report(report: QualityReport, out_dir: str, failures: list[str]) -> dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in (REPORT_MD, REPORT_JSON, REPORT_PNG)}
    payload = report.to_dict() | {"failures": failures}
    write_bytes_atomic(json.dumps(payload, indent=2, sort_keys=True).encode(), paths[REPORT_JSON])
    write_bytes_atomic(to_markdown(report, failures).encode(), paths[REPORT_MD])
    plot(report, paths[REPORT_PNG])
    return paths
