"""RENAS's own network rebuilt at the paper's size: RENASNet at N = 6, F = 32 (3.5 M)."""
import pytest
import torch

from deapnas.published import networks
from deapnas.published.renas import RENASNET, final_network
from deapnas.spaces import nasnet

#: What deapnas builds, exactly (docs/figures/parity_renas.csv shows it).
BUILT = {"RENASNet (N = 6, F = 32)": 3_533_930,
         "RENASNet (N = 6, F = 32), stem of F": 3_522_666,
         "RENASNet (N = 6, F = 32), with the auxiliary head": 4_002_164}


@pytest.mark.parametrize("network", networks("renas"), ids=lambda n: n.name)
def test_each_row_is_built_to_its_count(network):
    assert network.parameters() == BUILT[network.name]


@pytest.mark.parametrize("network", [n for n in networks("renas") if n.build().auxiliary is None],
                         ids=lambda n: n.name)
def test_renasnet_is_built_to_the_papers_size(network):
    # the paper prints 3.5 M: any count that rounds to it matches
    assert abs(network.parameters() - network.paper_parameters) < 0.05e6


def test_the_auxiliary_head_is_what_the_last_row_adds_and_the_paper_leaves_out():
    *without, with_head = networks("renas")
    assert with_head.build().auxiliary is not None
    assert with_head.parameters() - without[0].parameters() == sum(
        p.numel() for p in with_head.build().auxiliary.parameters())
    assert with_head.parameters() > with_head.paper_parameters + 0.05e6  # does not round to it


def test_renasnet_is_the_stem_of_3f_nasnet_skeleton_and_classifies_cifar_images():
    net = final_network(RENASNET)
    assert net.stem[0].out_channels == 96 and net.auxiliary is None
    assert len(net.cells) == 6 * 3 + 2  # N = 6 per stage, two reduction cells
    net.eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert nasnet.to_json(nasnet.from_json(RENASNET)) == RENASNET
