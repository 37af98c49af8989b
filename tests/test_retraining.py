"""DARTS' retraining aids as general training options: the auxiliary classifier, and a short
retraining with augmentation, auxiliary head and drop-path (augmentation and drop-path alone:
tests/test_augment.py)."""
import functools
from dataclasses import replace

import pytest
import torch
from torch import nn

from deapnas.augment import Augment
from deapnas.data import Split, load_dataset, stratified_subset
from deapnas.fitness import TrainEvaluator
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


def test_a_darts_retraining_with_every_aid_runs_and_is_reproducible():
    data = load_dataset("digits", seed=0)
    data = replace(data, train=data.train.subset(stratified_subset(data.train.y, 20, 0)))
    build = functools.partial(darts.build_network, channels=4, layers=5, auxiliary=True)
    recipe = Recipe(epochs=2, batch_size=100, optimizer="sgd", lr=0.025, weight_decay=3e-4,
                    schedule="cosine", grad_clip=5.0, augment=Augment(crop_padding=1, cutout=2),
                    drop_path=0.2)
    evaluate = TrainEvaluator(build, data, recipe=recipe, device="cpu", seed=3)
    first, second = evaluate(GENOTYPE), evaluate(GENOTYPE)
    assert first.info["reason"] is None and first == second and 0 <= first[0] <= 1
    with pytest.raises(ValueError, match="drop_path"):
        Recipe(drop_path=1.0)


def test_drop_path_rises_linearly_over_the_epochs_of_a_training():
    x, y = torch.randn(8, 3, 8, 8), torch.arange(8) % 4
    net = darts.build_network(GENOTYPE, (3, 8, 8), 4, channels=4, layers=5)
    body = net.cells[0].body
    rates = []
    body.register_forward_pre_hook(lambda module, inputs: rates.append(module.drop_path))
    data = load_dataset("digits", seed=0)
    evaluate = TrainEvaluator(lambda g, *shape: net, data, device="cpu",
                              recipe=Recipe(epochs=4, batch_size=8, drop_path=0.2))
    evaluate.fit(net, Split(x, y), 4)
    assert rates == pytest.approx([0.0, 0.05, 0.1, 0.15])
