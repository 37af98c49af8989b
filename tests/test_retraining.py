"""DARTS' retraining aids as general training options: batch augmentation (crop, flip, cutout),
the auxiliary classifier and drop-path, and a short retraining with all of them."""
import functools
from dataclasses import replace

import pytest
import torch
from torch import nn

from deapnas.augment import augment, cutout, horizontal_flip, random_crop
from deapnas.data import Split, load_dataset, stratified_subset
from deapnas.fitness import TrainEvaluator
from deapnas.networks import set_drop_path
from deapnas.spaces import darts
from deapnas.training import Recipe, train_epoch

pytestmark = pytest.mark.usefixtures("one_thread")

GENOTYPE = darts.Genotype(
    normal=[("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 0), ("max_pool_3x3", 2),
            ("avg_pool_3x3", 1), ("sep_conv_5x5", 3), ("skip_connect", 0), ("dil_conv_5x5", 4)],
    reduce=[("max_pool_3x3", 0), ("skip_connect", 1), ("avg_pool_3x3", 2), ("sep_conv_3x3", 0),
            ("max_pool_3x3", 1), ("skip_connect", 3), ("dil_conv_3x3", 2), ("max_pool_3x3", 4)])


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_random_crops_shift_each_image_within_its_padding():
    x = torch.arange(2 * 36, dtype=torch.float32).view(2, 1, 6, 6) + 1
    cropped = random_crop(x, 2, generator())
    assert cropped.shape == x.shape
    for original, moved in zip(x, cropped):  # a shifted window of the zero-padded image
        padded = nn.functional.pad(original, (2,) * 4)
        windows = [padded[:, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(moved, w) for w in windows)
    many = random_crop(x.repeat(50, 1, 1, 1), 2, generator())
    assert len({tuple(m.flatten().tolist()) for m in many[::2]}) > 10  # offsets differ


def test_flips_mirror_about_half_of_the_images():
    x = torch.randn(400, 3, 4, 4, generator=generator(1))
    flipped = horizontal_flip(x, generator())
    mirrored = [torch.equal(f, o.flip(2)) for f, o in zip(flipped, x)]
    kept = [torch.equal(f, o) for f, o in zip(flipped, x)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 150 < sum(mirrored) < 250


def test_cutout_zeroes_one_square_per_image_clipped_at_the_borders():
    x = torch.ones(300, 2, 10, 10)
    holes = (cutout(x, 4, generator()) == 0).all(dim=1)  # every channel of a pixel
    sizes = holes.sum(dim=(1, 2))
    assert sizes.max() == 16 and sizes.min() >= 4  # 4 x 4, or a corner of it at a border
    for hole in holes[:20]:
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert hole[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # a rectangle
    assert torch.equal(augment(x, generator=generator()), x)  # nothing asked, nothing done


def test_the_auxiliary_head_speaks_in_training_only_and_its_loss_is_weighted():
    torch.manual_seed(0)
    net = darts.build_network(GENOTYPE, (3, 8, 8), 10, channels=4, layers=5, auxiliary=True)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    logits, auxiliary = net.train()(x)
    assert logits.shape == auxiliary.shape == (4, 10)
    assert net.eval()(x).shape == (4, 10)
    plain = darts.build_network(GENOTYPE, (3, 8, 8), 10, channels=4, layers=5)
    assert sum(p.numel() for p in net.parameters()) > sum(p.numel() for p in plain.parameters())
    losses = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(1)
        model = darts.build_network(GENOTYPE, (3, 8, 8), 10, channels=4, layers=5,
                                    auxiliary=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # no step: the loss alone
        losses[weight] = train_epoch(model, Split(x, y), optimizer,
                                     Recipe(batch_size=4, auxiliary_weight=weight))
    torch.manual_seed(1)
    model = darts.build_network(GENOTYPE, (3, 8, 8), 10, channels=4, layers=5, auxiliary=True)
    logits, auxiliary = model.train()(x)
    assert losses[0.0] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert losses[1.0] == pytest.approx(losses[0.0] + nn.functional.cross_entropy(
        auxiliary, y).item(), rel=1e-5)


def test_drop_path_drops_whole_samples_of_operations_in_training_only():
    torch.manual_seed(0)
    net = darts.build_network(GENOTYPE, (3, 8, 8), 10, channels=8, layers=5)
    x = torch.randn(64, 3, 8, 8)
    net.eval()
    reference = net(x)
    set_drop_path(net, 0.9)
    assert torch.equal(net(x), reference)  # evaluation: untouched
    outputs = []
    cell = net.cells[0]
    op = cell.body.ops[cell.body.keys["2.0:sep_conv_3x3"]]
    op.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    net.train()
    net(x)
    dropped = (outputs[-1].flatten(1) == 0).all(1)
    assert 40 < dropped.sum() < 64  # about 90 % of the samples, whole
    kept = outputs[-1][~dropped]
    assert kept.abs().max() > 0
    set_drop_path(net, 0.0)
    net(x)
    assert not (outputs[-1].flatten(1) == 0).all(1).any()
    assert set(dict(net.named_parameters())) == set(dict(
        darts.build_network(GENOTYPE, (3, 8, 8), 10, channels=8, layers=5).named_parameters()))


def test_a_darts_retraining_with_every_aid_runs_and_is_reproducible():
    data = load_dataset("digits", seed=0)
    data = replace(data, train=data.train.subset(stratified_subset(data.train.y, 20, 0)))
    build = functools.partial(darts.build_network, channels=4, layers=5, auxiliary=True)
    recipe = Recipe(epochs=2, batch_size=100, optimizer="sgd", lr=0.025, weight_decay=3e-4,
                    schedule="cosine", grad_clip=5.0, crop_padding=1, cutout=2,
                    drop_path=0.2)
    evaluate = TrainEvaluator(build, data, recipe=recipe, device="cpu", seed=3)
    first, second = evaluate(GENOTYPE), evaluate(GENOTYPE)
    assert first.info["reason"] is None and first == second and 0 <= first[0] <= 1
    with pytest.raises(ValueError, match="drop_path"):
        Recipe(drop_path=1.0)
