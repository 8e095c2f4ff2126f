"""Sample pictures say what they show: captions from training, scatter legends, image-grid strips,
and plugin domains whose `show` predates the `title` keyword."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFont
from rich.console import Console

from cyclegen.plugins import load_plugins
from cyclegen.run import train_recipe
from cyclegen.streams import domain_generator
from cyclegen_plots import SIZE
from cyclegen_priors import Gaussian
from cyclegen_toy2d import Grid
from tests.conftest import aegan_data, cyclegan_data, write_recipe

QUIET = Console(quiet=True)
#: The text band at the top of a scatter plot, and the legend band at its bottom.
TOP, BOTTOM = slice(0, 26), slice(SIZE - 40, SIZE)

PLUGIN = '''
from PIL import Image
from PIL.PngImagePlugin import PngInfo
import torch
from cyclegen import Domain, hookimpl


def blank(path, title=None):
    """A tiny PNG carrying the caption it was asked to draw in its text chunk."""
    info = PngInfo()
    if title is not None:
        info.add_text("title", title)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), "white").save(path, pnginfo=info)
    return path


class Points(Domain):
    """2-D standard normal points."""

    can_show = True

    def __init__(self, name):
        super().__init__(name, (2,))

    def batch(self, n, generator, split="train"):
        return torch.randn(n, 2, generator=generator)


class Titled(Points):
    def show(self, samples, path, columns=None, *, title=None):
        return blank(path, title)


class AnyKeyword(Points):
    def show(self, samples, path, columns=None, **options):
        return blank(path, options.get("title"))


class OldShow(Points):
    """`show` as plugins wrote it before captions existed; `show_pairs` inherited."""

    def show(self, samples, path, columns=None):
        return blank(path)


class OldPairs(OldShow):
    """Both methods in the old form."""

    def show_pairs(self, first, second, path):
        return self.show(torch.cat([first, second]), path)


@hookimpl
def cyclegen_register(registry):
    registry.domain("titled-points", Titled)
    registry.domain("any-keyword-points", AnyKeyword)
    registry.domain("old-show-points", OldShow)
    registry.domain("old-pairs-points", OldPairs)
'''


def tiny_run(tmp_path: Path, x_type: str = "grid") -> Path:
    """Two steps of the tiny AEGAN with pictures at steps 0 and 2; returns the samples folder."""
    data = aegan_data(steps=2, log_every=2, sample_every=2, checkpoint_every=2, sample_count=40)
    data["domains"]["x"] = {"type": x_type}
    if x_type != "grid":
        (tmp_path / "points_plugin.py").write_text(PLUGIN)
        data["plugins"] = ["points_plugin.py"]
    train_recipe(write_recipe(tmp_path, data), out=tmp_path / "run", console=QUIET)
    return tmp_path / "run" / "samples"


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def dark(region: np.ndarray) -> int:
    """Text pixels: the plots draw nothing else this dark (points are blue, modes red, axes pale)."""
    return int((region.max(-1) < 120).sum())


def coloured(region: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((np.abs(region - np.array(rgb)).max(-1) < 40).sum())


@pytest.mark.parametrize("x_type", ["titled-points", "any-keyword-points"])
def test_training_captions_say_what_each_picture_shows(tmp_path: Path, x_type: str) -> None:
    samples = tiny_run(tmp_path, x_type)

    def title(stem: str, step: int) -> str:
        return Image.open(samples / f"{stem}-step{step:09d}.png").text["title"].replace("\u00a0", " ")

    assert title("G-fixed", 0) == "G(z), fixed noise · step 0"
    assert title("G-random", 2) == "G(z), fresh noise · step 2"
    assert title("cycle-x-E-G", 2) == "x -> E -> G: input | reconstruction · step 2"  # through the base show_pairs


@pytest.mark.parametrize("x_type", ["old-show-points", "old-pairs-points"])
def test_plugin_domains_without_title_still_draw(tmp_path: Path, x_type: str) -> None:
    samples = tiny_run(tmp_path, x_type)
    pictures = sorted(path.name for path in samples.iterdir())
    stems = ("G-fixed", "G-random", "cycle-x-E-G")
    assert pictures == [f"{stem}-step{step:09d}.png" for stem in stems for step in (0, 2)]
    assert all("title" not in Image.open(samples / name).text for name in pictures)


def test_translation_pictures_are_captioned(tmp_path: Path) -> None:
    data = cyclegan_data(steps=2, log_every=2, sample_every=2, checkpoint_every=2)
    data["domains"]["b"] = {"type": "titled-points"}
    for group in data["optim"].values():
        del group["lr_schedule"]  # its decay starts after these two steps
    (tmp_path / "points_plugin.py").write_text(PLUGIN)
    data["plugins"] = ["points_plugin.py"]
    train_recipe(write_recipe(tmp_path, data), out=tmp_path / "run", console=QUIET)
    picture = Image.open(tmp_path / "run" / "samples" / "F-translation-step000000002.png")
    assert picture.text["title"].replace("\u00a0", " ") == "F (a -> b): input | translation · step 2"


def test_toy_scatter_has_caption_legend_and_the_same_size(tmp_path: Path) -> None:
    samples = tiny_run(tmp_path)
    fixed, fresh = pixels(samples / "G-fixed-step000000002.png"), pixels(samples / "G-random-step000000002.png")
    assert fixed.shape == (SIZE, SIZE, 3)
    assert dark(fixed[TOP]) > 100  # the caption
    assert not np.array_equal(fixed[TOP], fresh[TOP])  # "fixed" and "fresh" read differently
    legend = fixed[BOTTOM]
    assert dark(legend) > 100 and coloured(legend, (220, 40, 40)) > 10 and coloured(legend, (30, 80, 200)) > 10
    cycle = pixels(samples / "cycle-x-E-G-step000000002.png")
    assert coloured(cycle[BOTTOM], (150, 150, 150)) > 10  # the inputs' grey marker

    grid = Grid("x")
    untitled = pixels(grid.show(grid.batch(40, torch.Generator().manual_seed(0)), tmp_path / "plain.png"))
    assert dark(untitled[TOP]) == 0  # no caption asked, none drawn
    assert dark(untitled[BOTTOM]) > 100  # the legend is always there


@pytest.mark.parametrize("dim", [1, 5])
def test_latent_pictures_take_a_caption(tmp_path: Path, dim: int) -> None:
    prior = Gaussian("z", dim=dim)
    batch = prior.batch(200, torch.Generator().manual_seed(0))
    titled = pixels(prior.show(batch, tmp_path / "titled.png", title="E(x) · step 3"))
    plain = pixels(prior.show(batch, tmp_path / "plain.png"))
    assert titled.shape == plain.shape  # a histogram (1-D) or a scatter keeps its size
    assert dark(titled[TOP]) > 30 and dark(plain[TOP]) == 0


def test_image_grids_get_a_caption_strip(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (16, 16), (40 * i, 200, 255 - 40 * i)).save(folder / f"{i}.png")
    options = {"source": str(folder), "size": 8, "cache": "off"}
    domain = load_plugins().registry.build("domain", "images", "domains.x", options, name="x")
    batch = domain.batch(6, domain_generator(0, "x"))
    plain = pixels(domain.show(batch, tmp_path / "plain.png"))
    titled = pixels(domain.show(batch, tmp_path / "titled.png", title="G(z) · step 1"))
    strip = titled.shape[0] - plain.shape[0]
    assert strip > 10 and dark(titled[:strip]) > 20
    assert np.array_equal(titled[strip:, : plain.shape[1]], plain)  # the grid itself is untouched
    pairs = pixels(domain.show_pairs(batch, batch, tmp_path / "pairs.png", title="x -> E -> G · step 1"))
    assert dark(pairs[:strip]) > 20


def test_captions_without_a_scalable_font(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow before 10.1 has only its bitmap font and `load_default` takes no size."""

    def old_load_default() -> ImageFont.ImageFont:
        return ImageFont.load_default_imagefont()

    monkeypatch.setattr(ImageFont, "load_default", old_load_default)
    grid = Grid("x")
    picture = pixels(grid.show(grid.batch(40, torch.Generator().manual_seed(0)), tmp_path / "old.png",
                               title="G(z), fixed noise · step 1,200 → ünïcode"))
    assert dark(picture[TOP]) > 50 and dark(picture[BOTTOM]) > 50
