"""RENAS's own network rebuilt at the paper's size: RENASNet at N = 6, F = 32 (3.5 M)."""
import pytest
import torch

from deapnas.published import networks
from deapnas.published.renas import RENASNET, final_network
from deapnas.spaces import nasnet

#: What deapnas builds, exactly (docs/figures/parity_renas.csv shows it).
BUILT = {"RENASNet (N = 6, F = 32)": 3_533_930,
         "RENASNet (N = 6, F = 32), stem of F": 3_522_666}


@pytest.mark.parametrize("network", networks("renas"), ids=lambda n: n.name)
def test_renasnet_is_built_to_the_papers_size(network):
    built = network.parameters()
    assert built == BUILT[network.name]
    # the paper prints 3.5 M: any count that rounds to it matches
    assert abs(built - network.paper_parameters) < 0.05e6


def test_renasnet_is_the_stem_of_3f_nasnet_skeleton_and_classifies_cifar_images():
    net = final_network(RENASNET)
    assert net.stem[0].out_channels == 96 and net.auxiliary is None
    assert len(net.cells) == 6 * 3 + 2  # N = 6 per stage, two reduction cells
    net.eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert nasnet.to_json(nasnet.from_json(RENASNET)) == RENASNET
