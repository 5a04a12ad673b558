"""`tierwise label`: grade a sample of logged traffic with a judge tier, as outcome rows a router trains on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer


def label_command(
    log_path: Annotated[Path, typer.Option("--log", help="decision log (SQLite) written by the gateway")],
    config: Annotated[Path, typer.Option("--config", help="the gateway's config: where the judge tier is")],
    judge_tier: Annotated[str, typer.Option("--judge", help="the tier that grades (usually the strongest)")],
    sample: Annotated[float, typer.Option("--sample", min=0.0, max=1.0, help="share of unlabelled requests")] = 0.05,
    answer_share: Annotated[
        float, typer.Option("--answer-share", min=0.0, max=1.0, help="share of those the judge also answers")
    ] = 0.2,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="also write the rows here (JSONL)")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the cost estimate and stop")] = False,
) -> None:
    """Ask a judge tier to grade served answers (and answer a share itself); labels go into the log."""
    from tierwise.config import OpenAITierConfig, load_settings
    from tierwise.errors import ConfigError
    from tierwise.traffic import store
    from tierwise.traffic.judge import HttpJudge
    from tierwise.traffic.labels import estimate, label_records, sample_records

    settings = load_settings(config)
    try:
        tier = settings.tier(judge_tier)
    except KeyError:
        raise typer.BadParameter(f"no tier {judge_tier!r} in {config}", param_hint="--judge") from None
    if not isinstance(tier, OpenAITierConfig):
        raise typer.BadParameter(f"tier {judge_tier!r} is not an HTTP (backend: openai) tier", param_hint="--judge")
    if not log_path.is_file():
        raise typer.BadParameter(f"{log_path} does not exist", param_hint="--log")
    if sample <= 0.0:
        raise typer.BadParameter("must be > 0", param_hint="--sample")
    conn = store.connect(log_path)
    try:
        records = store.read_records(conn)
        done = {row["request_id"] for row in store.read_labels(conn)}
        picked = sample_records(records, share=sample, seed=seed, already_labelled=done)
        cost = estimate(picked, answer_share=answer_share, seed=seed, input_per_mtok=tier.cost.input_per_mtok,
                        output_per_mtok=tier.cost.output_per_mtok)
        with_text = sum(1 for r in records if r.prompt and r.answer)
        typer.echo(f"{len(records)} requests logged, {with_text} with text, {len(done)} labelled already; "
                   f"sampled {len(picked)}: {cost} at {judge_tier}'s prices")
        if dry_run or not picked:
            return
        try:
            api_key = tier.api_key()
        except ConfigError as err:
            raise typer.BadParameter(err.message, param_hint="--judge") from None

        async def run() -> list[dict[str, object]]:
            async with HttpJudge(base_url=tier.base_url, model=tier.model, api_key=api_key) as judge:
                return await label_records(picked, judge, answer_share=answer_share, seed=seed)

        rows = asyncio.run(run())
        store.insert_labels(conn, rows)
    finally:
        conn.close()
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in rows)
    skipped = len(picked) - sum(1 for r in rows if r["kind"] == "served")
    typer.echo(f"wrote {len(rows)} label rows to {log_path}" + (f" and {output}" if output else "")
               + (f"; the judge gave no grade for {skipped}" if skipped else ""))
