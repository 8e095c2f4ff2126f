"""The fidelity metrics through cyclegen's public interface: the distribution, recipes, `cyclegen
run` and `cyclegen eval`, a user's own feature extractor, the reference cache, and the errors."""

from __future__ import annotations

import importlib.metadata
import json
import math
import tomllib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cyclegen.cli import app
from cyclegen.evaluate import evaluate_experiment
from cyclegen.experiment import open_trained
from cyclegen.plugins import load_plugins
from cyclegen_fidelity.inception import FIDInceptionV3
from cyclegen_fidelity.weights import PUBLISHED, WEIGHTS_ENV
from tests.conftest import AEGAN_TERMS, aegan_data, write_recipe
from tests.test_images import half_and_half

from test_inception import published_state

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
INSTALL = "pip install -e plugins/cyclegen-fidelity"
METRICS = ("fid", "kid", "precision-recall", "density-coverage")

runner = CliRunner()

#: A user's own feature extractor, registered by a local plugin file the recipe names.
EXTRACTOR_PLUGIN = '''
import torch
from cyclegen import FeatureExtractor, hookimpl


class TinyFeatures(FeatureExtractor):
    """Mean colour and a fixed random projection of the pixels: 3 + width features."""

    calls = 0

    def __init__(self, width: int = 5) -> None:
        self.width = width
        self.projection = None

    def identity(self) -> str:
        return f"tiny {self.width}"

    def applies_to(self, domain) -> bool:
        return len(domain.shape) == 3

    def __call__(self, samples, domain):
        TinyFeatures.calls += 1
        if self.projection is None:
            generator = torch.Generator().manual_seed(0)
            self.projection = torch.randn(samples[0].numel(), self.width, generator=generator)
        return torch.cat([samples.mean((2, 3)), samples.flatten(1) @ self.projection], 1)


@hookimpl
def cyclegen_register(registry):
    registry.features("tiny", TinyFeatures)
'''


@pytest.fixture(autouse=True)
def private_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No weights anywhere, and caches of this test's own."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("CYCLEGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "cache"


def invoke(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def image_recipe(root: Path, metrics: list, plugins: list[str] = ()) -> Path:
    """A tiny image AEGAN (MLPs on 8x8 images, a few steps) with `metrics` in its eval."""
    faces = root / "faces"
    faces.mkdir(exist_ok=True)
    for i in range(24):
        half_and_half(12 + i % 3, 12).rotate(15 * i).save(faces / f"{i:02d}.png")
    (root / "tiny_features.py").write_text(EXTRACTOR_PLUGIN)
    net = {"type": "mlp", "hidden": 16, "depth": 1}
    data = {
        "name": "tiny-image-aegan",
        "plugins": list(plugins),
        "train": {
            "steps": 4,
            "batch_size": 8,
            "device": "cpu",
            "log_every": 2,
            "sample_every": 4,
            "checkpoint_every": 4,
            "sample_count": 4,
        },
        "domains": {
            "x": {"type": "images", "source": str(faces), "size": 8, "test_fraction": 0.25, "cache": "off"},
            "z": {"type": "gaussian", "dim": 4},
        },
        "mappers": {"G": {**net, "from": "z", "to": "x", "output": "tanh"}, "E": {**net, "from": "x", "to": "z"}},
        "critics": {"Dx": {**net, "domain": "x"}, "Dz": {**net, "domain": "z"}},
        "terms": AEGAN_TERMS,
        "eval": {"samples": 12, "metrics": metrics},
    }
    return write_recipe(root, data)


# -- the distribution ------------------------------------------------------------------------


def test_plugin_is_its_own_distribution_and_lists_its_components() -> None:
    dist = importlib.metadata.distribution("cyclegen-fidelity")
    entries = {(e.group, e.name): e.value for e in dist.entry_points}
    assert entries == {("cyclegen", "fidelity"): "cyclegen_fidelity"}
    assert any(req.startswith("torchmetrics") for req in dist.requires or [])
    main = importlib.metadata.distribution("cyclegen")
    assert not any(req.startswith("torchmetrics") for req in main.requires or [])
    import cyclegen_fidelity

    assert Path(cyclegen_fidelity.__file__).resolve().parent.parent == PLUGIN_ROOT
    registry = load_plugins().registry
    assert {name for name in METRICS if registry.components["metric"][name].plugin == "fidelity"} == set(METRICS)
    assert {"inception", "raw"} <= set(registry.names("features"))
    result = invoke("plugins", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in (*METRICS, "inception", "raw", "features"):
        assert f" {name} " in result.output


def test_blocked_plugin_gives_the_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLEGEN_BLOCK_PLUGINS", "fidelity")
    data = aegan_data()
    data["eval"]["metrics"] = ["kid"]
    result = invoke("validate", write_recipe(tmp_path, data))
    assert result.exit_code == 1
    assert "eval.metrics[0]" in result.output and "cyclegen-fidelity" in result.output and INSTALL in result.output


# -- a toy run on its own coordinates ----------------------------------------------------------


def test_toy_run_scores_its_samples_on_raw_coordinates(tmp_path: Path) -> None:
    data = aegan_data(steps=10)
    data["eval"]["metrics"] = [
        {"type": "precision-recall", "features": "raw"},
        {"type": "density-coverage", "features": "raw", "k": 3},
        {"type": "fid", "features": "raw"},
        {"type": "kid", "features": "raw", "subsets": 5},
    ]
    run_dir = tmp_path / "run"
    result = invoke("run", write_recipe(tmp_path, data), "--out", run_dir)
    assert result.exit_code == 0, result.output
    saved = json.loads((run_dir / "eval.json").read_text())
    for section in ("G: z -> x", "E: x -> z"):  # raw features apply to every domain
        numbers = saved[section]
        for key in ("precision (raw)", "recall (raw)", "density (raw)", "coverage (raw)"):
            assert 0 <= numbers[key] <= (10 if key.startswith("density") else 1), key
        assert numbers["fd (raw)"] > 0 and math.isfinite(numbers["kd (raw)"]) and numbers["kd std (raw)"] > 0
        assert numbers["fd reference (raw)"] == 200
    again = invoke("eval", run_dir, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == saved  # repeatable: fixed reference and subset streams


# -- an image run with a user's extractor, and the cache -----------------------------------------


def test_a_registered_extractor_scores_an_image_run_and_its_reference_is_cached(
    tmp_path: Path, private_caches: Path
) -> None:
    features = {"type": "tiny", "width": 6}
    metrics = [
        {"type": "fid", "features": features},
        {"type": "kid", "features": features, "subsets": 4},
        {"type": "precision-recall", "features": features, "k": 2},
        {"type": "density-coverage", "features": features, "k": 2},
    ]
    run_dir = tmp_path / "run"
    result = invoke("run", image_recipe(tmp_path, metrics, ["tiny_features.py"]), "--out", run_dir)
    assert result.exit_code == 0, result.output
    numbers = json.loads((run_dir / "eval.json").read_text())["G: z -> x"]
    assert {"fd (tiny)", "kd (tiny)", "precision (tiny)", "recall (tiny)", "density (tiny)", "coverage (tiny)"} <= set(
        numbers
    )
    assert numbers["fd reference (tiny)"] == 6  # the whole held-out quarter of 24 images
    assert "fd (tiny)" not in json.loads((run_dir / "eval.json").read_text())["E: x -> z"]  # latents are no images
    assert len(list((private_caches / "features").glob("*.safetensors"))) == 1  # one reference set, one extractor

    exp = open_trained(run_dir, trust_plugins=True)
    tiny = exp.plugins.registry.get("features", "tiny", "test").factory
    tiny.calls = 0
    first = evaluate_experiment(exp)
    assert tiny.calls == 4  # the samples, four times; the reference came from the cache
    assert evaluate_experiment(exp) == first
    for cached in (private_caches / "features").glob("*.safetensors"):
        cached.write_bytes(b"torn")
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        assert evaluate_experiment(exp) == first


def test_the_inception_features_score_an_image_run_from_a_weights_file(tmp_path: Path) -> None:
    weights = tmp_path / PUBLISHED[0].file
    torch.save(published_state(FIDInceptionV3()), weights)
    run_dir = tmp_path / "run"
    result = invoke("run", image_recipe(tmp_path, []), "--out", run_dir)
    assert result.exit_code == 0, result.output
    result = invoke(
        "eval",
        run_dir,
        "--json",
        "--samples",
        "6",
        "--metric",
        "fid",
        "--metric",
        "precision-recall",
        env={WEIGHTS_ENV: str(weights)},
    )
    assert result.exit_code == 0, result.output
    numbers = json.loads(result.stdout)["G: z -> x"]
    assert numbers["fid"] > 0 and numbers["fid reference"] == 6
    assert 0 <= numbers["precision"] <= 1 and 0 <= numbers["recall"] <= 1
    assert "fid" not in json.loads(result.stdout)["E: x -> z"]


# -- errors --------------------------------------------------------------------------------------


def test_missing_weights_stop_a_run_before_training(tmp_path: Path) -> None:
    recipe = image_recipe(tmp_path, ["fid"])
    result = invoke("validate", recipe)
    assert result.exit_code == 1
    assert (
        "eval.metrics[0]" in result.output and PUBLISHED[0].file in result.output and PUBLISHED[0].url in result.output
    )
    run_dir = tmp_path / "run"
    result = invoke("run", recipe, "--out", run_dir)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not (run_dir / "checkpoints").exists()


def test_metrics_that_fit_no_domain_and_bad_options_are_recipe_errors(tmp_path: Path) -> None:
    weights = tmp_path / "inception.pth"
    torch.save(published_state(FIDInceptionV3()), weights)
    data = aegan_data()
    data["eval"]["metrics"] = [{"type": "fid", "features": {"type": "inception", "weights": str(weights)}}]
    result = invoke("validate", write_recipe(tmp_path, data))
    assert result.exit_code == 1
    assert "applies to none of the domains" in result.output and "x (2,)" in result.output
    run_dir = tmp_path / "toy"
    assert invoke("run", write_recipe(tmp_path, aegan_data(steps=2)), "--out", run_dir).exit_code == 0
    result = invoke("eval", run_dir, "--metric", "kid", env={WEIGHTS_ENV: str(weights)})
    assert result.exit_code == 1 and "metric 'kid'" in result.output and "applies to none" in result.output
    cases = [("inceptoin", "did you mean 'inception'"), ({"weights": "w.pth"}, "features: a table needs a `type`")]
    for features, expected in cases:
        data["eval"]["metrics"] = [{"type": "fid", "features": features}]
        result = invoke("validate", write_recipe(tmp_path, data))
        assert result.exit_code == 1 and expected in result.output, result.output
    data["eval"]["metrics"] = [{"type": "kid", "features": "raw", "subset_sise": 10}]
    result = invoke("validate", write_recipe(tmp_path, data))
    assert result.exit_code == 1 and "did you mean 'subset_size'" in result.output


# -- the docs' examples --------------------------------------------------------------------------

DOC = PLUGIN_ROOT.parents[1] / "docs" / "fidelity.md"


def doc_blocks(language: str) -> list[str]:
    parts = DOC.read_text().split(f"```{language}\n")[1:]
    return [part.split("```")[0] for part in parts]


def test_the_docs_recipe_example_is_a_valid_eval_section() -> None:
    from cyclegen.recipe import EvalSpec

    (block,) = doc_blocks("toml")
    spec = EvalSpec.model_validate(tomllib.loads(block)["eval"])
    assert [m if isinstance(m, str) else m.type for m in spec.metrics] == [
        "kid",
        "fid",
        "precision-recall",
        "density-coverage",
    ]
    registry = load_plugins().registry
    for metric in spec.metrics[1:]:
        component = registry.get("metric", metric.type, "docs")
        assert set(metric.options) <= set(component.options())


def test_the_docs_extractor_example_runs_as_a_plugin(tmp_path: Path) -> None:
    (block,) = doc_blocks("python")
    (tmp_path / "mean_colour.py").write_text(block)
    run_dir = tmp_path / "run"
    recipe = image_recipe(tmp_path, [{"type": "kid", "features": "mean-colour", "subsets": 3}], ["mean_colour.py"])
    result = invoke("run", recipe, "--out", run_dir)
    assert result.exit_code == 0, result.output
    numbers = json.loads((run_dir / "eval.json").read_text())["G: z -> x"]
    assert math.isfinite(numbers["kd (mean-colour)"]) and numbers["kd reference (mean-colour)"] == 6
