"""The `best` checkpoint: which evaluation during training scored best on the recipe's metric."""

from __future__ import annotations

import math
from collections.abc import Mapping

from cyclegen.checkpoint import Checkpoint
from cyclegen.errors import RecipeError
from cyclegen.recipe import BestSpec

Metrics = Mapping[str, Mapping[str, float]]


class BestTracker:
    """Compares each evaluation's value of `train.best` with the best so far.

    The best so far is read back from the best checkpoint on resume (its metadata records
    the metric, direction and value), so a run that resumes keeps comparing with it; a best
    checkpoint of another metric or direction is replaced by the first evaluation.
    """

    def __init__(self, spec: BestSpec, previous: Checkpoint | None = None) -> None:
        self.spec = spec
        self.value: float | None = None
        self.step: int | None = None
        recorded = previous.meta.get("best") if previous is not None else None
        if isinstance(recorded, dict) and recorded.get("of") == self.describe():
            self.value, self.step = float(recorded["value"]), previous.step

    def describe(self) -> str:
        """The metric and its direction, as messages and the best checkpoint's metadata name it:
        "G: z -> x kl (min)"."""
        where = f"{self.spec.section} " if self.spec.section else ""
        return f"{where}{self.spec.metric} ({self.spec.direction})"

    def pick(self, metrics: Metrics) -> float:
        """The named metric's value in `metrics`, or an error listing what there is to name."""
        spec = self.spec
        sections = [spec.section] if spec.section is not None else list(metrics)
        found = [name for name in sections if spec.metric in metrics.get(name, {})]
        if len(found) == 1:
            return float(metrics[found[0]][spec.metric])
        named = "; ".join(f"{name}: {', '.join(values)}" for name, values in metrics.items())
        if not found:
            where = f" in section {spec.section!r}" if spec.section is not None else ""
            raise RecipeError(
                f"train.best.metric: the evaluation has no metric {spec.metric!r}{where}; it has {named}"
            )
        raise RecipeError(
            f"train.best.metric: {spec.metric!r} is a metric of {', '.join(found)}; name one with train.best.section"
        )

    def improves(self, value: float) -> bool:
        """Whether `value` beats the best so far (a NaN never does; the first finite value does)."""
        if math.isnan(value):
            return False
        if self.value is None:
            return True
        return value < self.value if self.spec.direction == "min" else value > self.value

    def record(self, step: int, value: float) -> dict[str, object]:
        """Take `value` at `step` as the best; returns what the best checkpoint's metadata keeps."""
        self.value, self.step = value, step
        return {"of": self.describe(), "value": value}
