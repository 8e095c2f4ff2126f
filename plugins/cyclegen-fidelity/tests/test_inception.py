"""The FID Inception-v3 against the published model, its preprocessing, and its weights files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from cyclegen_fidelity.features import InceptionFeatures
from cyclegen_fidelity.inception import ConvBN, FIDInceptionV3, network_input, tensorflow_bilinear
from cyclegen_fidelity.weights import PUBLISHED, WEIGHTS_ENV, WeightsError, find_weights, load_network

#: torchvision's published count for Inception_V3_Weights.IMAGENET1K_V1 (1,000 classes, with
#: the auxiliary head). The FID model drops that head and has 1,008 classes.
TORCHVISION_PARAMETERS = 27_161_264
AUX_HEAD = (768 * 128 + 2 * 128) + (128 * 768 * 5 * 5 + 2 * 768) + (768 * 1000 + 1000)
FID_PARAMETERS = TORCHVISION_PARAMETERS - AUX_HEAD - (2048 * 1000 + 1000) + (2048 * 1008 + 1008)

#: A few tensors of the published file, from the torchvision / pytorch-fid layout.
PUBLISHED_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def published_state(network: FIDInceptionV3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in the published key layout, without the batch-norm counters (as the
    file, saved by an older PyTorch, has them), scaled so that features stay alive through
    all 94 layers."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in network.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        noise = torch.randn(value.shape, generator=generator)
        if key.endswith("conv.weight") or key == "fc.weight":
            state[key] = noise * (2 / value[0].numel()) ** 0.5
        elif key.endswith("running_var") or key.endswith("bn.weight"):
            state[key] = 1 + 0.1 * noise.abs()
        else:  # biases and running means
            state[key] = 0.1 * noise
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(published_state(FIDInceptionV3()), path)
    return path


def test_parameter_count_and_convolutions_match_the_published_model() -> None:
    network = FIDInceptionV3()
    assert sum(p.numel() for p in network.parameters()) == FID_PARAMETERS == 23_850_960
    assert sum(isinstance(m, ConvBN) for m in network.modules()) == 94  # Inception-v3's 94 convolutions
    state = network.state_dict()
    for key, shape in PUBLISHED_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) == 94 * 5 + 2


def test_layer_shapes_follow_the_published_network() -> None:
    network = FIDInceptionV3().eval()
    shapes = {}
    for name, module in network.named_children():
        module.register_forward_hook(lambda m, i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
    with torch.no_grad():
        features = network(torch.zeros(1, 3, 299, 299))
    assert features.shape == (1, 2048)
    expected = {
        "Conv2d_1a_3x3": (32, 149, 149),
        "Conv2d_2a_3x3": (32, 147, 147),
        "Conv2d_2b_3x3": (64, 147, 147),
        "Conv2d_3b_1x1": (80, 73, 73),
        "Conv2d_4a_3x3": (192, 71, 71),
        "Mixed_5b": (256, 35, 35),
        "Mixed_5c": (288, 35, 35),
        "Mixed_5d": (288, 35, 35),
        "Mixed_6a": (768, 17, 17),
        "Mixed_6b": (768, 17, 17),
        "Mixed_6e": (768, 17, 17),
        "Mixed_7a": (1280, 8, 8),
        "Mixed_7b": (2048, 8, 8),
        "Mixed_7c": (2048, 8, 8),
    }
    assert {name: shapes[name] for name in expected} == expected


def test_last_block_max_pools_and_the_others_leave_padding_out() -> None:
    block = FIDInceptionV3().Mixed_7c.eval()
    x = torch.randn(1, 2048, 8, 8)
    seen = {}
    block.branch_pool.register_forward_hook(lambda m, i, o: seen.__setitem__("in", i[0]))
    with torch.no_grad():
        block(x)
    assert torch.equal(seen["in"], F.max_pool2d(x, 3, stride=1, padding=1))
    block = FIDInceptionV3().Mixed_5b.eval()
    x = torch.rand(1, 192, 35, 35)
    block.branch_pool.register_forward_hook(lambda m, i, o: seen.__setitem__("in", i[0]))
    with torch.no_grad():
        block(x)
    corner = x[0, :, :2, :2].mean((1, 2))  # the 4 real neighbours of the corner pixel, not 9
    assert torch.allclose(seen["in"][0, :, 0, 0], corner)


def test_tensorflow_bilinear_samples_without_half_pixel_centres() -> None:
    matrix = tensorflow_bilinear(2, 4)
    signal = torch.tensor([10.0, 20.0], dtype=torch.float64)
    assert (matrix @ signal).tolist() == [10.0, 15.0, 20.0, 20.0]  # i * 2 / 4, the last repeated
    assert torch.equal(tensorflow_bilinear(5, 5), torch.eye(5, dtype=torch.float64))
    assert torch.allclose(tensorflow_bilinear(64, 299).sum(1), torch.ones(299, dtype=torch.float64))


def test_network_input_scales_as_each_published_tool() -> None:
    pixels = torch.full((1, 3, 299, 299), 255, dtype=torch.uint8)
    assert torch.allclose(network_input(pixels, "torch-fidelity"), torch.tensor(127 / 128))
    assert torch.allclose(network_input(pixels, "pytorch-fid"), torch.tensor(1.0))
    small = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    expected = 2 * F.interpolate(small.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) - 1
    assert torch.allclose(network_input(small, "pytorch-fid"), expected)
    assert network_input(small, "torch-fidelity").shape == (2, 3, 299, 299)


def test_a_file_in_the_published_layout_loads_exactly(weights_file: Path, tmp_path: Path) -> None:
    expected = torch.load(weights_file, weights_only=True)
    network = load_network(weights_file)
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    state = network.state_dict()
    assert all(torch.equal(state[key], value) for key, value in expected.items())
    as_safetensors = tmp_path / "inception.safetensors"
    save_file(expected, as_safetensors)
    again = load_network(as_safetensors).state_dict()
    assert all(torch.equal(again[key], value) for key, value in expected.items())


def test_files_that_are_not_the_weights_are_refused(weights_file: Path, tmp_path: Path) -> None:
    state = torch.load(weights_file, weights_only=True)
    del state["Mixed_6c.branch7x7_1.conv.weight"]
    state["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(
        WeightsError, match="missing keys .*Mixed_6c.branch7x7_1.conv.weight.*unexpected keys .*AuxLogits"
    ):
        load_network(broken)
    state = torch.load(weights_file, weights_only=True)
    state["fc.weight"] = torch.zeros(1000, 2048)
    torch.save(state, broken)
    with pytest.raises(WeightsError, match="wrong shape .*fc.weight"):
        load_network(broken)
    torn = tmp_path / "torn.pth"
    torn.write_bytes(weights_file.read_bytes()[: 1 << 20])
    with pytest.raises(WeightsError, match="cannot read"):
        load_network(torn)
    torch.save([1, 2, 3], broken)
    with pytest.raises(WeightsError, match="no state dict"):
        load_network(broken)


def test_features_are_the_networks_pool_features_of_8_bit_images(weights_file: Path) -> None:
    extractor = InceptionFeatures(weights=str(weights_file), device="cpu", batch=2)
    images = torch.rand(3, 1, 12, 12) * 2 - 1  # grey: repeated to RGB
    features = extractor(images, _Images((1, 12, 12)))
    pixels = ((images + 1) * 127.5).round().to(torch.uint8).expand(-1, 3, -1, -1)
    with torch.no_grad():
        expected = load_network(weights_file)(network_input(pixels, "torch-fidelity"))
    assert features.shape == (3, 2048) and features.dtype == torch.float32
    assert torch.allclose(features, expected, atol=1e-5)
    assert InceptionFeatures(weights=str(weights_file), device="cpu").batch == 10  # faster than 50 on a CPU
    assert extractor.identity().startswith("fid-inception-v3 ") and extractor.identity().endswith(" torch-fidelity")
    with pytest.raises(ValueError, match=r"need images .*shape \(2,\).*features = \"raw\""):
        extractor(torch.zeros(4, 2), _Images((2,)))


class _Images:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.name, self.shape = "x", shape


# -- finding the weights ---------------------------------------------------------------------


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every place the weights are looked for, empty."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("CYCLEGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def test_missing_weights_name_the_file_and_where_it_is_published(no_weights: Path) -> None:
    with pytest.raises(WeightsError) as caught:
        find_weights()
    message = str(caught.value)
    assert PUBLISHED[0].file in message and PUBLISHED[0].url in message
    assert str(no_weights / "cache" / "weights") in message and WEIGHTS_ENV in message
    assert "never downloads" in message
    with pytest.raises(WeightsError, match="nothing.pth.*does not exist"):
        find_weights(str(no_weights / "nothing.pth"))


def test_weights_are_found_by_option_variable_and_cache_folders(
    no_weights: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_weights(str(weights_file)) == weights_file
    hub = no_weights / "torch" / "hub" / "checkpoints" / PUBLISHED[1].file  # torch-fidelity's download
    hub.parent.mkdir(parents=True)
    hub.symlink_to(weights_file)
    assert find_weights() == hub
    ours = no_weights / "cache" / "weights" / PUBLISHED[0].file
    ours.parent.mkdir(parents=True)
    ours.symlink_to(weights_file)
    assert find_weights() == ours  # cyclegen's own folder first
    monkeypatch.setenv(WEIGHTS_ENV, str(weights_file))
    assert find_weights() == weights_file
