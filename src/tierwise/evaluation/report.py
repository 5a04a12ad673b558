"""Writes an evaluation's outputs: results.json, meta.json, report.md and PNG plots (matplotlib, Agg).

Published RouteLLM figures (paper tables 2–3, on the same RouteLLM files) are listed beside ours when the data
is one of those benchmarks, so a reader sees both in one table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Results = dict[str, dict[str, Any]]

# RouteLLM (Ong et al., ICLR 2025), tables 2–3: (router, CPT50 %, CPT80 %, APGR); trained on arena data
# (+ augmentation), evaluated out of domain — not the same protocol as cross-validation on the benchmark.
PUBLISHED: dict[str, list[tuple[str, float, float, float]]] = {
    "mmlu": [
        ("random", 50.1, 79.9, 0.500),
        ("BERT, augmented", 41.3, 72.2, 0.572),
        ("causal LLM, augmented", 35.5, 70.3, 0.600),
        ("matrix factorization, augmented", 35.5, 71.4, 0.597),
        ("similarity-weighted, augmented", 35.4, 71.6, 0.603),
    ],
    "gsm8k": [
        ("random", 50.0, 80.1, 0.497),
        ("BERT, augmented", 44.8, 79.1, 0.531),
        ("causal LLM, augmented", 33.6, 63.3, 0.622),
        ("matrix factorization, augmented", 38.8, 72.6, 0.565),
        ("similarity-weighted, augmented", 41.2, 72.2, 0.568),
    ],
}
ROUTELLM_PAIR = ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")


def published_key(tiers: list[str], data: str) -> str | None:
    """Which published table applies: the RouteLLM pair on a path naming mmlu or gsm8k."""
    if tuple(tiers) != ROUTELLM_PAIR:
        return None
    low = data.lower()
    return next((k for k in ("gsm8k", "mmlu") if k in low), None)


def _fmt(x: Any, *, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.3f}"


def _routers_table(results: Results, shares: list[str]) -> list[str]:
    head = "| router | kind | APGR | CPT50 % | CPT80 % | CPT95 % | AIQ | " + " | ".join(
        f"quality @ {float(s):.0%} cloud (rel.)" for s in shares
    )
    lines = [head + " |", "|" + "---|" * (7 + len(shares))]
    order = sorted(results, key=lambda k: (results[k].get("kind") != "router", k))
    for name in order:
        r = results[name]
        rel = r.get("relative_quality_at_cloud_share", {})
        cells = [
            f"{_fmt(r['quality_at_cloud_share'].get(s))} ({_fmt(rel.get(s), pct=True)} %)"
            if s in r.get("quality_at_cloud_share", {})
            else f"{_fmt(r.get('quality'))} (fixed, {_fmt((r.get('tier_share') or [None])[-1], pct=True)} % cloud)"
            for s in shares
        ]
        row = [name, r.get("kind", ""), _fmt(r.get("apgr")), _fmt(r.get("cpt50"), pct=True)]
        row += [_fmt(r.get("cpt80"), pct=True), _fmt(r.get("cpt95"), pct=True), _fmt(r.get("aiq")), *cells]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def markdown(results: Results, meta: dict[str, Any]) -> str:
    """The report: data and protocol, one table of every router and baseline, published figures if any."""
    shares = ["0.1", "0.2", "0.3"]
    lines = ["# Routing evaluation", ""]
    lines += [f"- data: `{meta.get('data')}` (format {meta.get('format')})"]
    lines += [f"- tiers (cheapest first) and cost per call: {meta.get('tiers')} / {meta.get('costs')}"]
    lines += [f"- protocol: {meta.get('protocol')}"]
    for k, v in meta.get("data_info", {}).items():
        lines.append(f"- {k}: {v}")
    lines += [
        "",
        "CPT = share of strong calls needed to recover that share of the quality gap (lower is better);",
        "quality @ x % cloud = mean quality when the x % queries with the largest predicted cloud advantage",
        "go to the cloud tier; rel. = as a share of all-cloud quality. See docs/evaluation.md.",
        "",
    ]
    lines += _routers_table(results, shares)
    key = meta.get("published")
    if key in PUBLISHED:
        lines += [
            "",
            f"## Published RouteLLM routers on {key} (paper tables 2–3)",
            "",
            "Trained on Chatbot Arena data (+ augmentation) and judged out of domain: a different",
            "protocol from cross-validation on the benchmark itself.",
            "",
            "| router | CPT50 % | CPT80 % | APGR |",
            "|---|---|---|---|",
        ]
        lines += [f"| {n} | {c50} | {c80} | {a:.3f} |" for n, c50, c80, a in PUBLISHED[key]]
    lines += ["", "Plots: `pgr.png` (two tiers), `cloud_share.png`, `cost_quality.png`.", ""]
    return "\n".join(lines)


def write_plots(results: Results, out: Path, *, tiers: list[str]) -> list[Path]:
    """PNG plots: PGR against strong-call share (two tiers), quality against cloud share and against cost."""
    import matplotlib

    matplotlib.use("Agg")  # no display here or in CI
    import matplotlib.pyplot as plt

    written = []
    curved = {k: v for k, v in results.items() if v.get("cost_curve")}
    if len(tiers) == 2:
        fig, ax = plt.subplots(figsize=(8, 5.5))
        for name, r in curved.items():
            c = r["pgr_curve"]
            ax.plot(c["strong_share"], c["pgr"], marker=".", label=f"{name} (APGR {_fmt(r['apgr'])})")
        ax.set(xlabel=f"share of calls to {tiers[1]}", ylabel="performance gap recovered (PGR)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axhline(1, color="grey", lw=0.5)
        written.append(_save(fig, ax, out / "pgr.png", "PGR against strong-call share"))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, r in curved.items():
        c = r["cloud_share_curve"]
        ax.plot(c["cloud_share"], c["quality"], marker=".", label=name)
    ax.set(xlabel=f"share of calls to {tiers[-1]} (cloud)", ylabel="quality")
    written.append(_save(fig, ax, out / "cloud_share.png", "Quality against cloud share"))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, r in results.items():
        if r.get("cost_curve"):
            ax.plot(r["cost_curve"]["cost"], r["cost_curve"]["quality"], marker=".", ms=3, label=name)
        elif r.get("cost") is not None:
            ax.scatter([r["cost"]], [r["quality"]], marker="*", s=120, zorder=3, label=name)
    ax.set(xlabel="mean cost per query", ylabel="quality")
    written.append(_save(fig, ax, out / "cost_quality.png", "Quality against cost"))
    return written


def _save(fig: Any, ax: Any, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: Results, meta: dict[str, Any], out: str | Path, *, plots: bool = True) -> list[Path]:
    """Write results.json, meta.json, report.md (and the plots) into `out`; return the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "meta.json", out / "report.md"]
    paths[0].write_text(json.dumps(results, indent=1) + "\n")
    paths[1].write_text(json.dumps(meta, indent=1) + "\n")
    paths[2].write_text(markdown(results, meta))
    if plots:
        paths += write_plots(results, out, tiers=list(meta["tiers"]))
    return paths
