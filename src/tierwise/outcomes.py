"""Outcome data: which model answered which query well. Used by routing (training) and evaluation alike.

An `OutcomeTable` is a query × model matrix of scores in [0, 1] (NaN where a model has no outcome), with
optional per-query categories and per-(query, model) output lengths. Loaders read the shared data sets by path
(never copied into the repo):

- ``routellm``: RouteLLM's evaluation CSVs, one file or a directory of ``mmlu_<domain>.csv`` files (the domain
  becomes the category). Columns ``prompt`` and one True/False column per model; ``<model>_response`` columns
  (GSM8K) are not models: their text is kept as the model's response, and its length / 4 becomes the model's
  output tokens.
- ``mmlu-pro``: MMLU-Pro's ``outcomes.csv.gz``: query text = question + lettered options; ``<model>`` is
  1/0/empty; ``<model>:chars`` / 4 ≈ output tokens (a value of 0 means "not recorded" and becomes NaN).
- ``generic``: long format CSV or JSONL, one row per (query, model): ``query, model, score`` and optionally
  ``output_tokens``, ``category``, ``query_id``, ``response``. Rows with the same query (or query_id) become one row.

Usage: ``table = load_outcomes("../shared/datasets/mmlu_pro/outcomes.csv.gz")``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from tierwise.costs import CHARS_PER_TOKEN

OPTION_LETTERS = "ABCDEFGHIJKLMNOP"


@dataclass
class OutcomeTable:
    """Per-query outcomes of several models on the same queries.

    Attributes:
        queries: the query text, one per row.
        models: the model names, one per column.
        scores: shape (n, m), float in [0, 1]; NaN = the model has no outcome for that query.
        categories: one label per row (e.g. the MMLU domain), or None.
        output_tokens: shape (n, m), output length in tokens (NaN = unknown), or None.
        query_ids: a stable id per row (given by the data, else a hash of the text).
        responses: {model: its answer text per row ("" where unknown)} for the models whose answers the data
            holds, or None. A cascade reads the cheaper tiers' answers from here.
    """

    queries: list[str]
    models: list[str]
    scores: np.ndarray
    categories: list[str] | None = None
    output_tokens: np.ndarray | None = None
    query_ids: list[str] = field(default_factory=list)
    responses: dict[str, list[str]] | None = None

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64)
        n, m = len(self.queries), len(self.models)
        if self.scores.shape != (n, m):
            raise ValueError(f"scores has shape {self.scores.shape}, expected ({n}, {m})")
        finite = self.scores[~np.isnan(self.scores)]
        if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
            raise ValueError("scores must lie in [0, 1] (NaN for missing)")
        if self.categories is not None and len(self.categories) != n:
            raise ValueError("categories must have one entry per query")
        if self.output_tokens is not None:
            self.output_tokens = np.asarray(self.output_tokens, dtype=np.float64)
            if self.output_tokens.shape != (n, m):
                raise ValueError("output_tokens must have the same shape as scores")
        if self.responses is not None:
            unknown = [k for k in self.responses if k not in self.models]
            if unknown:
                raise ValueError(f"responses name models the table does not have: {unknown}")
            if any(len(v) != n for v in self.responses.values()):
                raise ValueError("responses must hold one text per query for each model")
        if not self.query_ids:
            self.query_ids = [text_id(q) for q in self.queries]
        elif len(self.query_ids) != n:
            raise ValueError("query_ids must have one entry per query")

    def __len__(self) -> int:
        return len(self.queries)

    def subset(self, rows: Sequence[int] | np.ndarray) -> OutcomeTable:
        """The table restricted to `rows` (indices or a boolean mask), in that order."""
        idx = np.arange(len(self))[np.asarray(rows)] if len(rows) else np.zeros(0, dtype=int)
        return OutcomeTable(
            queries=[self.queries[i] for i in idx],
            models=list(self.models),
            scores=self.scores[idx],
            categories=None if self.categories is None else [self.categories[i] for i in idx],
            output_tokens=None if self.output_tokens is None else self.output_tokens[idx],
            query_ids=[self.query_ids[i] for i in idx],
            responses=None if self.responses is None else {m: [r[i] for i in idx] for m, r in self.responses.items()},
        )

    def select_models(self, names: Sequence[str]) -> OutcomeTable:
        """The table with only these model columns, in this order; unknown names raise KeyError."""
        missing = [n for n in names if n not in self.models]
        if missing:
            raise KeyError(f"unknown models {missing}; the table has {self.models}")
        cols = [self.models.index(n) for n in names]
        return OutcomeTable(
            queries=list(self.queries),
            models=list(names),
            scores=self.scores[:, cols],
            categories=None if self.categories is None else list(self.categories),
            output_tokens=None if self.output_tokens is None else self.output_tokens[:, cols],
            query_ids=list(self.query_ids),
            responses=None if self.responses is None else _kept(self.responses, names),
        )

    def complete_rows(self) -> np.ndarray:
        """Boolean mask of rows where every model has a score."""
        return np.asarray(~np.isnan(self.scores).any(axis=1))

    def mean_scores(self) -> dict[str, float]:
        """Each model's mean score over the queries it has an outcome for."""
        return {m: float(np.nanmean(self.scores[:, j])) for j, m in enumerate(self.models)}


def _kept(responses: dict[str, list[str]], names: Sequence[str]) -> dict[str, list[str]] | None:
    kept = {m: list(r) for m, r in responses.items() if m in names}
    return kept or None


def text_id(text: str) -> str:
    """A short stable id for a query text (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _bool_score(value: str) -> float:
    v = value.strip().lower()
    if v in ("true", "1", "1.0"):
        return 1.0
    if v in ("false", "0", "0.0"):
        return 0.0
    if v in ("", "nan", "none"):
        return float("nan")
    return float(v)


def _read_routellm_csv(path: Path, category: str | None) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    with _open_text(path) as fh:
        yield from ((row["prompt"], category, row) for row in csv.DictReader(fh))


def load_routellm(path: str | Path) -> OutcomeTable:
    """RouteLLM CSVs: one CSV, or a directory of CSVs (the file stem minus ``mmlu_`` is the category)."""
    p = Path(path)
    files = sorted(p.glob("*.csv")) if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"no CSV files in {p}")
    rows: list[tuple[str, str | None, dict[str, Any]]] = []
    for f in files:
        cat = f.stem.removeprefix("mmlu_") if p.is_dir() else None
        rows.extend(_read_routellm_csv(f, cat))
    header = list(rows[0][2].keys()) if rows else []
    models = [c for c in header if c != "prompt" and not c.endswith("_response")]
    responses = {m: f"{m}_response" for m in models if f"{m}_response" in header}
    scores = np.array([[_bool_score(r[m]) for m in models] for _, _, r in rows], dtype=np.float64)
    texts = {m: [r[col] or "" for _, _, r in rows] for m, col in responses.items()}
    out_tok = None
    if texts:
        out_tok = np.full(scores.shape, np.nan)
        for j, m in enumerate(models):
            if m in texts:
                out_tok[:, j] = [len(t) / CHARS_PER_TOKEN for t in texts[m]]
    cats = [c for _, c, _ in rows]
    return OutcomeTable(
        queries=[q for q, _, _ in rows],
        models=models,
        scores=scores,
        categories=[str(c) for c in cats] if all(c is not None for c in cats) else None,
        output_tokens=out_tok,
        responses=texts or None,
    )


def mmlu_pro_query(question: str, options: Sequence[str]) -> str:
    """The query text for an MMLU-Pro row: the question, then one ``X. option`` line per option."""
    lines = [question.strip()]
    lines += [f"{OPTION_LETTERS[i]}. {opt}" for i, opt in enumerate(options)]
    return "\n".join(lines)


def load_mmlu_pro(path: str | Path) -> OutcomeTable:
    """MMLU-Pro ``outcomes.csv.gz``: 1/0/empty per model, ``<model>:chars`` / 4 ≈ output tokens (0 → NaN)."""
    with _open_text(Path(path)) as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    fixed = {"question_id", "category", "src", "question", "options", "answer"}
    models = [c for c in header if c not in fixed and not c.endswith(":chars")]
    scores = np.array([[_bool_score(r[m]) for m in models] for r in rows], dtype=np.float64)
    chars = np.array([[float(r.get(f"{m}:chars") or "nan") for m in models] for r in rows], dtype=np.float64)
    chars[chars <= 0] = np.nan  # a length of 0 means the output text was not recorded
    return OutcomeTable(
        queries=[mmlu_pro_query(r["question"], json.loads(r["options"])) for r in rows],
        models=models,
        scores=scores,
        categories=[r["category"] for r in rows],
        output_tokens=chars / CHARS_PER_TOKEN,
        query_ids=[r["question_id"] for r in rows],
    )


def _read_long_rows(path: Path) -> Iterable[dict[str, Any]]:
    name = path.name.removesuffix(".gz")
    with _open_text(path) as fh:
        if name.endswith((".jsonl", ".ndjson")):
            return [json.loads(line) for line in fh if line.strip()]
        return list(csv.DictReader(fh))


def load_generic(path: str | Path) -> OutcomeTable:
    """Long format (CSV or JSONL): ``query, model, score[, output_tokens][, category][, query_id]`` per row.

    Rows sharing a query_id (or, without one, the same query text) form one table row; a later row for the
    same (query, model) overrides an earlier one. Models appear in order of first mention.
    """
    return generic_table(_read_long_rows(Path(path)))


def generic_table(records: Iterable[dict[str, Any]]) -> OutcomeTable:
    """`load_generic`'s table from rows already in memory (e.g. labels read from a decision log)."""
    row_of: dict[str, int] = {}
    model_of: dict[str, int] = {}
    queries: list[str] = []
    cats: list[str | None] = []
    cells: list[tuple[int, int, float, float]] = []
    answers: dict[tuple[int, int], str] = {}
    for rec in records:
        qid = str(rec.get("query_id") or text_id(str(rec["query"])))
        if qid not in row_of:
            row_of[qid] = len(queries)
            queries.append(str(rec["query"]))
            cats.append(rec.get("category") or None)
        model = str(rec["model"])
        model_of.setdefault(model, len(model_of))
        tok = rec.get("output_tokens")
        tok_f = float(tok) if tok not in (None, "") else float("nan")
        cells.append((row_of[qid], model_of[model], _bool_score(str(rec["score"])), tok_f))
        if rec.get("response") not in (None, ""):
            answers[row_of[qid], model_of[model]] = str(rec["response"])
    scores = np.full((len(queries), len(model_of)), np.nan)
    tokens = np.full_like(scores, np.nan)
    for i, j, s, t in cells:
        scores[i, j], tokens[i, j] = s, t
    return OutcomeTable(
        queries=queries,
        models=list(model_of),
        scores=scores,
        categories=[c or "" for c in cats] if any(cats) else None,
        output_tokens=None if np.isnan(tokens).all() else tokens,
        query_ids=list(row_of),
        responses=_response_lists(answers, list(model_of), len(queries)),
    )


def _response_lists(answers: dict[tuple[int, int], str], models: list[str], n: int) -> dict[str, list[str]] | None:
    """{model: text per row} for the models with at least one answer text ("" where a row has none)."""
    out: dict[str, list[str]] = {}
    for (i, j), text in answers.items():
        out.setdefault(models[j], [""] * n)[i] = text
    return out or None


def _detect_format(path: Path) -> str:
    if path.is_dir():
        return "routellm"
    if path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz"):
        return "generic"
    with _open_text(path) as fh:
        header = next(csv.reader(fh), [])
    if "question_id" in header and "options" in header:
        return "mmlu-pro"
    if "prompt" in header:
        return "routellm"
    if {"query", "model", "score"} <= set(header):
        return "generic"
    raise ValueError(f"cannot tell the format of {path} from its header {header[:6]}; pass format=")


LOADERS: dict[str, Callable[[str | Path], OutcomeTable]] = {
    "routellm": load_routellm,
    "mmlu-pro": load_mmlu_pro,
    "generic": load_generic,
}


def load_outcomes(path: str | Path, *, format: str = "auto") -> OutcomeTable:
    """Load an outcome table; `format` is one of ``auto``, ``routellm``, ``mmlu-pro``, ``generic``."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(p)
    fmt = _detect_format(p) if format == "auto" else format
    if fmt not in LOADERS:
        raise ValueError(f"unknown outcome format {fmt!r}; valid: auto, {', '.join(LOADERS)}")
    return LOADERS[fmt](p)


def load_contaminated_prompts(path: str | Path) -> set[str]:
    """The ``eval_prompt`` values of RouteLLM's ``contaminated_prompts.jsonl`` (to drop from evaluation)."""
    with _open_text(Path(path)) as fh:
        return {json.loads(line)["eval_prompt"] for line in fh if line.strip()}
