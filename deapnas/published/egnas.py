"""EG-NAS's own networks: the DARTS_V2 genotype (Liu et al., 2019), the baseline EG-NAS builds
on, and the CIFAR-10 genotypes the EG-NAS authors release (``genotypes.py`` of
github.com/caicaicheng/EG-NAS, which the paper's figure only draws), each in DARTS' evaluation
network at the paper's final settings: CIFAR-10 (3 x 32 x 32, 10 classes), C = 36, 20 cells.

The counts leave out the auxiliary classifier, which serves training only: DARTS' and the
authors' ``count_parameters_in_MB`` skip it, and :func:`~deapnas.networks.inference_parameters`
does the same for a network built with it.
"""
from __future__ import annotations

import functools

from torch import nn

from ..spaces import darts
from . import PublishedNetwork

#: DARTS (second order), as DARTS' ``genotypes.py`` prints it.
DARTS_V2 = {
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
    "reduce_concat": [2, 3, 4, 5],
}

#: The authors' ``eg_nas_cifar10`` as the file leaves it, the genotype its ``eg_nas`` names and
#: its ``train.py`` retrains by default (the file assigns ``eg_nas_cifar10`` twice: the second
#: assignment wins).
EGNAS_CIFAR10 = {
    "normal": [["sep_conv_5x5", 1], ["sep_conv_3x3", 0], ["dil_conv_3x3", 2], ["sep_conv_3x3", 0],
               ["sep_conv_3x3", 2], ["max_pool_3x3", 0], ["avg_pool_3x3", 0], ["sep_conv_5x5", 4]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["skip_connect", 0], ["max_pool_3x3", 1], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0],
               ["sep_conv_5x5", 3], ["max_pool_3x3", 1], ["sep_conv_3x3", 4], ["max_pool_3x3", 2]],
    "reduce_concat": [2, 3, 4, 5],
}

#: The first ``eg_nas_cifar10`` of the authors' file (overwritten there by the second).
EGNAS_CIFAR10_FIRST = {
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["dil_conv_3x3", 0],
               ["dil_conv_3x3", 2], ["skip_connect", 3], ["sep_conv_3x3", 1], ["dil_conv_5x5", 3]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["sep_conv_3x3", 1], ["max_pool_3x3", 0], ["dil_conv_5x5", 2], ["sep_conv_3x3", 0],
               ["sep_conv_3x3", 2], ["max_pool_3x3", 0], ["dil_conv_3x3", 3], ["skip_connect", 2]],
    "reduce_concat": [2, 3, 4, 5],
}

#: The paper's final evaluation setting: CIFAR-10 images, DARTS' network at C = 36, 20 cells.
CIFAR10 = {"input_shape": (3, 32, 32), "num_classes": 10}
CHANNELS, CELLS = 36, 20


def build(genotype: dict, channels: int = CHANNELS, cells: int = CELLS) -> nn.Module:
    """The genotype (in ``to_json`` form) through :func:`deapnas.spaces.darts.from_json`, in
    DARTS' evaluation network for CIFAR-10 (no auxiliary head: it is not counted)."""
    return darts.build_network(darts.from_json(genotype), **CIFAR10, channels=channels,
                               layers=cells)


NETWORKS = [
    PublishedNetwork(
        "DARTS_V2 (C = 36, 20 cells)", "Liu et al. 2019, Table 1 (DARTS, second order)",
        3.3e6, "3.3 M", functools.partial(build, DARTS_V2),
        "rounding only: DARTS' own code prints 3.349342 MB for this network"),
    PublishedNetwork(
        "EG-NAS CIFAR-10, eg_nas (C = 36, 20 cells)",
        "Cai et al. 2024, Table 1; genotype from the authors' genotypes.py", 3.2e6, "3.2 M",
        functools.partial(build, EGNAS_CIFAR10),
        "not rounding: the released genotype (5x5 and dilated convolutions where DARTS_V2 has "
        "3x3 ones and pools) is larger in the network that gives DARTS_V2 exactly; the "
        "authors' model.py, the network they counted, is not in their repository"),
    PublishedNetwork(
        "EG-NAS CIFAR-10, first listed (C = 36, 20 cells)",
        "Cai et al. 2024, Table 1; genotype from the authors' genotypes.py", 3.2e6, "3.2 M",
        functools.partial(build, EGNAS_CIFAR10_FIRST),
        "an earlier genotype that the same file overwrites, compared with the same 3.2 M: it "
        "is larger too"),
]
