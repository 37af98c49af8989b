"""Training-time augmentation of device-resident batches (crops, flips, AutoAugment, Cutout)
and drop-path in compiled cells."""
import networkx as nx
import pytest
import torch
from torchvision.transforms import AutoAugment, AutoAugmentPolicy

from deapnas.augment import (Augment, auto_augment, cutout, pixel_bounds, random_crop,
                             random_flip)
from deapnas.data import Split
from deapnas.compiler import compile_graph, drop_path
from deapnas.networks import CellNetwork, set_drop_path
from deapnas import fitness, training
from deapnas.fitness import TrainEvaluator
from deapnas.training import Recipe, make_optimizer, train_epoch

pytestmark = pytest.mark.usefixtures("one_thread")


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_a_crop_is_a_window_of_the_padded_image():
    x = torch.randn(40, 2, 5, 6)
    fill = torch.tensor([-1.0, -2.0])[:, None, None]
    cropped = random_crop(x, 2, fill, generator())
    padded = torch.nn.functional.pad(x - fill, (2,) * 4) + fill
    offsets = set()
    for image, original in zip(cropped, padded):
        matches = [(top, left) for top in range(5) for left in range(5)
                   if torch.equal(image, original[:, top:top + 5, left:left + 6])]
        assert matches
        offsets.update(matches)
    assert len(offsets) > 10  # the offsets vary from image to image
    assert cropped.shape == x.shape


def test_a_flip_mirrors_about_half_of_the_images():
    x = torch.randn(200, 1, 4, 4)
    flipped = random_flip(x, generator())
    mirrored = [torch.equal(a, b.flip(2)) for a, b in zip(flipped, x)]
    assert all(m or torch.equal(a, b) for m, a, b in zip(mirrored, flipped, x))
    assert 70 < sum(mirrored) < 130


def test_cutout_zeroes_one_square_centred_in_the_image():
    x = torch.ones(300, 3, 10, 10)
    out = cutout(x, 4, generator())
    for image in out:
        zero = image == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])
        rows, columns = zero[0].any(1).nonzero().flatten(), zero[0].any(0).nonzero().flatten()
        assert 2 <= len(rows) <= 4 and 2 <= len(columns) <= 4  # cut off at the border at most
        assert zero[0].sum() == len(rows) * len(columns)  # a rectangle
        assert (rows.diff() == 1).all() and (columns.diff() == 1).all()
    assert (out == 0).float().mean() < 0.2


def test_autoaugment_sees_the_original_8_bit_images():
    """Normalised images go through torchvision's AutoAugment as the 8-bit images they came
    from: the result is what AutoAugment makes of those, normalised the same way."""
    raw = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    raw[0, :, 0, 0], raw[0, :, 0, 1] = 0, 255  # each channel holds black and white
    mean, std = torch.tensor([0.4, 0.5, 0.6])[:, None, None], 0.25
    normalised = (raw.float() / 255 - mean) / std
    low, high = pixel_bounds(normalised)
    torch.manual_seed(3)
    transform = AutoAugment(AutoAugmentPolicy.CIFAR10)
    expected = torch.stack([transform(image) for image in raw])
    torch.manual_seed(3)
    augmented = auto_augment(normalised, "cifar10", low, high)
    assert torch.allclose((augmented * std + mean) * 255, expected.float(), atol=1e-3)
    assert not torch.equal(expected, raw)


def test_a_recipe_augments_only_the_training_batches():
    x, y = torch.randn(64, 1, 8, 8), torch.arange(64) % 4
    seen = []

    class Recording(Augment):
        def __call__(self, batch, bounds, generator=None):
            seen.append(bounds)
            return super().__call__(batch, bounds, generator)

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    recipe = Recipe(batch_size=16, optimizer="sgd", lr=0.1,
                    augment=Recording(crop_padding=1, flip=True, autoaugment="svhn", cutout=3))
    train_epoch(net, Split(x, y), make_optimizer(net.parameters(), recipe), recipe, generator())
    assert len(seen) == 4
    assert torch.equal(seen[0][0].flatten(), x.amin().reshape(1))
    with pytest.raises(ValueError, match="autoaugment"):
        Augment(autoaugment="mnist")


def test_drop_path_drops_whole_samples_and_keeps_the_expectation():
    x = torch.ones(4000, 2, 3, 3)
    torch.manual_seed(0)
    out = drop_path(x, 0.25)
    per_sample = out.flatten(1)
    assert per_sample.unique().tolist() == pytest.approx([0.0, 4 / 3])
    assert (per_sample == 0).all(1).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert out.mean().item() == pytest.approx(1.0, abs=0.05)


def conv_cell() -> nx.DiGraph:
    """h2, h1 -> conv on h1, summed with h2."""
    graph = nx.DiGraph(inputs=["h2", "h1"], output="sum")
    graph.add_node("conv", op="relu_conv_bn", args={"kernel": 3})
    graph.add_node("sum", op="identity")
    graph.add_edges_from([("h1", "conv"), ("conv", "sum"), ("h2", "sum")])
    return graph


def test_cells_drop_their_operations_while_training_only():
    body = compile_graph(conv_cell(), [(4, 5, 5)] * 2)
    assert body.droppable == {"conv"} and body.drop_path == 0.0
    net = CellNetwork((1, 10, 10), 3, conv_cell(), channels=4, cells_per_stage=2)
    set_drop_path(net, 0.5)
    assert all(cell.body.drop_path == 0.5 for cell in net.cells if hasattr(cell, "body"))
    x = torch.randn(8, 1, 10, 10)
    net.eval()
    plain = CellNetwork((1, 10, 10), 3, conv_cell(), channels=4, cells_per_stage=2)
    plain.load_state_dict(net.state_dict())
    plain.eval()
    assert torch.equal(net(x), plain(x))  # no dropping at evaluation
    net.train()
    torch.manual_seed(1)
    first = net(x)
    torch.manual_seed(2)
    assert not torch.allclose(first, net(x))  # another draw drops other paths
    set_drop_path(net, 0.0)
    torch.manual_seed(1)
    plain.train()
    assert torch.equal(net(x), plain(x))  # rate 0 turns it off


def test_a_cell_network_can_drop_out_before_its_classifier():
    net = CellNetwork((1, 10, 10), 3, conv_cell(), channels=4, cells_per_stage=1, dropout=0.5)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in net.head)
    x = torch.randn(8, 1, 10, 10)
    net.eval()
    assert torch.equal(net(x), net(x))  # off in evaluation
    net.train()
    torch.manual_seed(0)
    first = net(x)
    assert not torch.equal(first, net(x))
    plain = CellNetwork((1, 10, 10), 3, conv_cell(), channels=4, cells_per_stage=1)
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.head)


def test_a_training_of_several_epochs_finds_the_pixel_bounds_once(monkeypatch):
    found = []

    def counted(x):
        found.append(x)
        return pixel_bounds(x)

    for module in (training, fitness):  # wherever a training looks them up
        monkeypatch.setattr(module, "pixel_bounds", counted, raising=False)
    x, y = torch.randn(40, 2, 6, 6, generator=generator()), torch.arange(40) % 3
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(72, 3))
    evaluator = TrainEvaluator(lambda *args, **kwargs: net, None, epochs=3, batch_size=20,
                               lr=0.1, device="cpu", augment=Augment(flip=True))
    assert evaluator.fit(net, Split(x, y), epochs=3) == 3
    assert len(found) == 1 and found[0] is x

