"""`cyclegen report`: a run directory as one self-contained HTML page, to read or send on.

The page embeds everything (charts as inline SVG, samples as data URIs, styles inline) and
loads nothing: a Content-Security-Policy forbids scripts and every fetch, and every string
taken from the run directory is escaped, so a page made from someone else's run is safe to
open. Making it never loads the recipe's plugins or a checkpoint: it reads files only.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cyclegen.checkpoint import NAME as CHECKPOINT_NAME
from cyclegen.checkpoint import checkpoint_files
from cyclegen.errors import CycleGenError, WriteFailedError
from cyclegen.files import atomic_write
from cyclegen.rundir import CHECKPOINTS, IDENTITY, LOG, RUN_RECIPE
from cyclegen.svg_chart import Series, line_chart

SAMPLES = "samples"
EVAL = "eval.json"
#: A sample picture: `<series>-step<9 digits>.png`, as cyclegen.samples writes them.
SAMPLE_FILE = re.compile(r"^(?P<series>.+)-step(?P<step>\d+)\.png$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: At most this many pictures of one series: the first, evenly spaced middle ones, the last.
PER_SERIES = 8
#: Bytes of PNG embedded over all series (base64 adds a third); a series over its share shows fewer.
SAMPLE_BUDGET = 16 * 2**20
#: Warnings listed in full; the rest are counted.
MAX_WARNINGS = 200
#: Loss terms are charted by kind, the first word of their names (trainer and graph name them so).
LOSS_KINDS = {"critic": "critic losses", "adv": "adversarial terms", "rec": "reconstruction terms",
              "idt": "identity terms"}


def write_report(run_dir: Path, out: Path) -> Path:
    """Write the report page of `run_dir` to `out` (replaced atomically) and return `out`."""
    run_dir, out = Path(run_dir), Path(out)
    if out.is_dir():
        raise CycleGenError(f"{out} is a folder: give the report a file name, e.g. --out {out / 'report.html'}")
    try:
        page = render(run_dir)
    except OSError as exc:  # a file of the run that exists but cannot be read (permissions, I/O)
        raise CycleGenError(f"cannot read {exc.filename or run_dir}: {exc.strerror or exc}") from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, page.encode())
    except OSError as exc:
        raise WriteFailedError(f"cannot write the report to {out}: {exc.strerror or exc}; pick another --out") from None
    return out


def render(run_dir: Path) -> str:
    """The report page of `run_dir` as HTML text."""
    check_run_dir(run_dir)
    log = read_log(run_dir / LOG)
    recipe_text, recipe, recipe_problem = read_recipe(run_dir / RUN_RECIPE)
    body = [
        header(run_dir, log, recipe, recipe_problem),
        log_notes(log, recipe),
        charts_section(log),
        samples_section(run_dir / SAMPLES),
        eval_section(run_dir / EVAL),
        warnings_section(log),
        recipe_section(recipe_text, recipe_problem),
    ]
    title = f"cyclegen report: {run_dir.resolve().name}"
    return PAGE.format(title=html.escape(title), style=STYLE, body="\n".join(part for part in body if part))


def check_run_dir(run_dir: Path) -> None:
    """Refuse a path that is not a run directory, saying what a run directory holds."""
    if not run_dir.exists():
        raise CycleGenError(f"{run_dir} does not exist: give the folder `cyclegen run` trained into "
                            "(runs/<recipe name>, or its --out)")
    if not run_dir.is_dir():
        raise CycleGenError(f"{run_dir} is a file, not a run directory: give the folder `cyclegen run` trained into")
    if not any((run_dir / name).is_file() for name in (RUN_RECIPE, IDENTITY, LOG)):
        raise CycleGenError(f"{run_dir} is not a run directory: it has none of {RUN_RECIPE}, {IDENTITY}, {LOG}. "
                            "Give the folder `cyclegen run` trained into (runs/<recipe name>, or its --out)")


# -- reading the run directory ----------------------------------------------------------------


@dataclass
class RunLog:
    """The lines of metrics.jsonl that can be read, as series per chart, and what was not read."""

    steps: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    series: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    evals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    unreadable: int = 0
    torn_last: bool = False

    def add(self, chart: str, name: str, step: int, value: Any) -> None:
        if (number := as_number(value)) is not None:
            self.series.setdefault(chart, {}).setdefault(name, []).append((step, number))


def as_number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (null, text, booleans, integers beyond float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def read_log(path: Path) -> RunLog:
    """Parse the training log. A line that is not a JSON object with an integer step is
    skipped and counted, as the run's own log handling does; the last one is usually a line
    torn by a kill, or one being written while the report reads."""
    log = RunLog()
    if not path.is_file():
        return log
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    for i, line in enumerate(lines):
        record = _record(line)
        if record is None:
            log.unreadable += 1
            log.torn_last = log.torn_last or i == len(lines) - 1
            continue
        step = record["step"]
        if isinstance(record.get("eval"), dict):
            for group, values in record["eval"].items():
                for name, value in values.items() if isinstance(values, dict) else ():
                    if (number := as_number(value)) is not None:
                        log.evals.setdefault(f"{group}: {name}", []).append((step, number))
        if not isinstance(record.get("losses"), dict):
            continue
        log.steps.append(step)
        logged = as_number(record.get("time"))
        if logged is not None and 0 <= logged < 1e11:  # seconds since 1970 that a date can show
            log.times.append(logged)
        for name, value in record["losses"].items():
            log.add(loss_kind(name), name, step, value)
        for chart, key in (("learning rate", "lr"), ("critic score spread", "critic spread")):
            for name, value in record[key].items() if isinstance(record.get(key), dict) else ():
                log.add(chart, name, step, value)
        log.add("throughput", "steps/s", step, record.get("steps_per_s"))
        if isinstance(record.get("warnings"), list):
            log.warnings.extend((step, str(message)) for message in record["warnings"])
    return log


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    step = record.get("step")
    return record if isinstance(step, int) and not isinstance(step, bool) and 0 <= step < 2**63 else None


def loss_kind(term: str) -> str:
    """The chart a loss term goes on: terms of one kind share a scale, unlike terms of different kinds."""
    kind = term.split(" ", 1)[0]
    return LOSS_KINDS.get(kind, f"{kind} terms")


def read_recipe(path: Path) -> tuple[str | None, dict[str, Any], str | None]:
    """The resolved recipe's text and data, or what is wrong with it (the page still shows the rest)."""
    if not path.is_file():
        return None, {}, f"{RUN_RECIPE} is missing"
    text = path.read_text(errors="replace")
    try:
        return text, tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        return text, {}, f"{RUN_RECIPE} is not valid TOML ({exc})"


def read_json(path: Path) -> tuple[Any, str | None]:
    """A JSON file's data, or why it cannot be read."""
    if not path.is_file():
        return None, f"{path.name} is missing"
    try:
        return json.loads(path.read_text(errors="replace")), None
    except (ValueError, RecursionError) as exc:
        return None, f"{path.name} is not valid JSON ({exc})"


@dataclass
class SampleSeries:
    """The pictures of one sample series chosen for the page, and how many were not."""

    name: str
    shown: list[tuple[int, bytes]]
    total: int
    unreadable: int


def pick_samples(directory: Path, per_series: int = PER_SERIES, budget: int = SAMPLE_BUDGET) -> list[SampleSeries]:
    """For each series, up to `per_series` pictures spread over training (first and last
    included), fewer where they would exceed the series' share of `budget` bytes."""
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in directory.glob("*.png") if directory.is_dir() else ():
        if (match := SAMPLE_FILE.match(path.name)) and path.is_file():
            found.setdefault(match["series"], []).append((int(match["step"]), path))
    share = budget // max(len(found), 1)
    picked = []
    for name in sorted(found):
        files = sorted(found[name])
        chosen = fitting(files, per_series, share)
        pictures = [(step, path.read_bytes()) for step, path in chosen]
        shown = [(step, data) for step, data in pictures if data.startswith(PNG_SIGNATURE)]
        picked.append(SampleSeries(name, shown, len(files), len(pictures) - len(shown)))
    return picked


def fitting(files: list[tuple[int, Path]], most: int, share: int) -> list[tuple[int, Path]]:
    """The largest spread of at most `most` of `files` whose sizes add up to `share` bytes or less."""
    for k in range(min(most, len(files)), 0, -1):
        chosen = spread(files, k)
        if sum(path.stat().st_size for _, path in chosen) <= share:
            return chosen
    return []


def spread(items: list[Any], k: int) -> list[Any]:
    """`k` items evenly spread over `items`: the last alone for one, first and last from two."""
    if k == 1:
        return items[-1:]
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


# -- the page's sections ----------------------------------------------------------------------


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def header(run_dir: Path, log: RunLog, recipe: dict[str, Any], recipe_problem: str | None) -> str:
    identity, identity_problem = read_json(run_dir / IDENTITY)
    identity = identity if isinstance(identity, dict) else {}
    train = recipe.get("train") if isinstance(recipe.get("train"), dict) else {}
    planned = train.get("steps")
    trained = f"{max(log.steps):,}" if log.steps else "none logged yet"
    if log.steps and isinstance(planned, int):
        trained += f" of {planned:,}"
    saved = checkpoint_files(run_dir / CHECKPOINTS)
    if saved and (match := CHECKPOINT_NAME.match(saved[-1].name)):
        checkpoint = f"step {int(match.group(1)):,} ({len(saved)} kept)"
    else:
        checkpoint = "none yet"
    rows = [
        ("run directory", esc(run_dir.resolve())),
        ("recipe", esc(recipe.get("name", "?")) if recipe_problem is None else f'<span class="bad">{esc(recipe_problem)}</span>'),
        ("steps trained", esc(trained)),
        ("latest checkpoint", esc(checkpoint)),
        ("run id", esc(identity.get("id", identity_problem or "?"))),
        ("created", esc(identity.get("created", "?"))),
    ]
    if log.times:
        rows.append(("logged", esc(f"{when(log.times[0])} to {when(log.times[-1])}")))
    rows.append(("report written", esc(when(time.time()))))
    items = "".join(f"<dt>{key}</dt><dd>{value}</dd>" for key, value in rows)
    name = recipe.get("name") if recipe_problem is None else None
    heading = f"{esc(name)} <small>{esc(run_dir.resolve().name)}</small>" if name else esc(run_dir.resolve().name)
    return f"<header><h1>{heading}</h1><dl>{items}</dl></header>"


def log_notes(log: RunLog, recipe: dict[str, Any]) -> str:
    notes = []
    if not log.steps:
        train = recipe.get("train") if isinstance(recipe.get("train"), dict) else {}
        every = train.get("log_every")
        when_first = f" (every {every} steps: train.log_every)" if isinstance(every, int) else ""
        notes.append(f"No metrics logged yet: {LOG} gets its first line at the first log step{when_first}.")
    if log.torn_last:
        notes.append(f"The last line of {LOG} is torn (a run killed while writing it, or still writing) "
                     "and was skipped.")
    other = log.unreadable - log.torn_last
    if other:
        notes.append(f"{other} other unreadable line(s) of {LOG} were skipped.")
    return "".join(f'<p class="note">{esc(note)}</p>' for note in notes)


def charts_section(log: RunLog) -> str:
    loss_charts = [chart for chart in log.series if chart not in ("learning rate", "critic score spread", "throughput")]
    order = [*loss_charts, "learning rate", "critic score spread", "throughput"]
    charts = [line_chart(chart, [Series(name, points) for name, points in log.series[chart].items()])
              for chart in order if chart in log.series]
    parts = []
    if charts:
        parts.append('<section><h2>Training</h2><p class="hint">Mean of each value since the previous log '
                     "line; on long series a faint line is the logged values and the solid one their moving "
                     f'average.</p><div class="charts">{"".join(charts)}</div></section>')
    if log.evals:
        evals = [line_chart(name, [Series(name, points)]) for name, points in log.evals.items()]
        parts.append(f'<section><h2>Evaluation over training</h2><div class="charts">{"".join(evals)}</div></section>')
    return "\n".join(parts)


def samples_section(directory: Path) -> str:
    picked = pick_samples(directory)
    if not picked:
        return f'<section><h2>Samples</h2><p class="note">No sample pictures in {esc(SAMPLES)}/ yet.</p></section>'
    blocks = []
    for series in picked:
        figures = "".join(
            f'<figure><img src="data:image/png;base64,{base64.b64encode(data).decode()}" '
            f'alt="{esc(series.name)} at step {step}"><figcaption>step {step:,}</figcaption></figure>'
            for step, data in series.shown
        )
        skipped = series.total - len(series.shown) - series.unreadable
        counts = f"{len(series.shown)} of {series.total} shown"
        if skipped:
            counts += f"; {skipped} skipped to keep the page small"
        if series.unreadable:
            counts += f"; {series.unreadable} not readable as PNG"
        blocks.append(f'<h3>{esc(series.name)} <small>{esc(counts)}</small></h3><div class="samples">{figures}</div>')
    return f'<section><h2>Samples</h2>{"".join(blocks)}</section>'


def eval_section(path: Path) -> str:
    metrics, problem = read_json(path)
    if problem is not None or not isinstance(metrics, dict):
        why = problem or f"{EVAL} does not hold {{group: {{metric: value}}}}"
        return (f'<section><h2>Final evaluation</h2><p class="note">{esc(why)}: it is written when training '
                "ends; <code>cyclegen eval RUN</code> evaluates the latest checkpoint.</p></section>")
    rows = []
    for group, values in metrics.items():
        values = values if isinstance(values, dict) else {"?": values}
        for i, (name, value) in enumerate(values.items()):
            first = f'<th rowspan="{len(values)}">{esc(group)}</th>' if i == 0 else ""
            rows.append(f"<tr>{first}<td>{esc(name)}</td><td class=\"num\">{esc(number(value))}</td></tr>")
    return ('<section><h2>Final evaluation</h2><table><thead><tr><th>evaluated</th><th>metric</th><th>value</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def number(value: object) -> str:
    """A metric as the eval command prints it; null is a metric undefined on this model."""
    if value is None:
        return "undefined"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.4g}"
    return str(value)


def warnings_section(log: RunLog) -> str:
    if not log.warnings:
        return '<section><h2>Warnings</h2><p class="hint">None logged.</p></section>'
    items = "".join(f"<li><b>step {step:,}</b>: {esc(message)}</li>" for step, message in log.warnings[:MAX_WARNINGS])
    more = len(log.warnings) - MAX_WARNINGS
    tail = f'<p class="note">{more} more not listed; all are in {LOG}.</p>' if more > 0 else ""
    return f"<section><h2>Warnings</h2><ul>{items}</ul>{tail}</section>"


def recipe_section(text: str | None, problem: str | None) -> str:
    if text is None:
        return f'<section><h2>Recipe</h2><p class="note">{esc(problem)}</p></section>'
    return (f"<section><h2>Recipe</h2><details><summary>the resolved recipe ({esc(RUN_RECIPE)})</summary>"
            f"<pre>{esc(text)}</pre></details></section>")


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{body}
</body>
</html>
"""

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; background: #fff; margin: 24px auto; max-width: 1120px;
       padding: 0 16px; }
h1 { margin: 0 0 8px; } h1 small, h3 small { color: #666; font-weight: normal; font-size: 60%; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 0; }
dt { color: #666; } dd { margin: 0; }
.note { background: #fff6e0; border-left: 4px solid #e0a000; padding: 6px 10px; }
.hint { color: #666; } .bad { color: #b00020; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { background: #fff; border: 1px solid #e4e4e4; }
svg .title { font: bold 13px system-ui, sans-serif; fill: #222; }
svg .tick, svg .legend, svg .axis-label { font: 11px system-ui, sans-serif; fill: #444; }
svg .note { fill: #a06000; }
svg .frame { fill: none; stroke: #999; } svg .grid { stroke: #eee; }
svg .line { stroke-width: 2; stroke-linejoin: round; } svg .raw { stroke-width: 1; opacity: 0.3; }
.samples { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; } figure img { width: 256px; height: auto; border: 1px solid #ddd; }
figcaption { color: #666; font-size: 12px; text-align: center; }
table { border-collapse: collapse; } th, td { border: 1px solid #ddd; padding: 3px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } tbody th { vertical-align: top; }
pre { background: #f6f6f6; padding: 10px; overflow-x: auto; }
"""
