"""Draw RENAS's mutation controller as implemented by :mod:`deapnas.controller` (the figure of
``docs/methods/renas.rst``): ``python docs/methods/renas_controller.py`` writes
``renas_controller.png`` beside this file."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

COLOURS = {"token": "#d9e8f5", "net": "#fde9c9", "decision": "#d8efd3", "learn": "#f6d5d5",
           "state": "#ffffff"}


def box(ax, x, y, w, h, text, kind, size=9):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02",
                                facecolor=COLOURS[kind], edgecolor="#555555", linewidth=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def arrow(ax, start, end, style="-|>", colour="#444444", **options):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=9,
                                 color=colour, linewidth=0.8, shrinkA=2, shrinkB=2, **options))


def draw(path: Path) -> None:
    figure, ax = plt.subplots(figsize=(12, 6.6))
    ax.set_xlim(0, 12)
    ax.set_ylim(-0.4, 6.6)
    ax.axis("off")

    # the cell's string: two external begin states, then per block i1 i2 o1 o2 and a "+" token
    tokens = [("i1", 1), ("i2", 1), ("o1", 1), ("o2", 1), ("+", 1),
              ("i1", 2), ("i2", 2), ("o1", 2), ("o2", 2), ("+", 2)]
    xs = [2.2 + 0.72 * k + (0.3 if block == 2 else 0) for k, (_, block) in enumerate(tokens)]
    for x, (token, block) in zip(xs, tokens):
        box(ax, x, 0.2, 0.6, 0.42, token, "token")
    ax.text(xs[2], -0.25, "block 1", ha="center", fontsize=8)
    ax.text(xs[7], -0.25, "block b", ha="center", fontsize=8)
    ax.text(xs[-1] + 0.55, 0.2, "...", fontsize=12, va="center")
    ax.text(0.15, 0.2, "cell string\n(5B tokens)", fontsize=8, va="center")

    box(ax, (xs[0] + xs[-1]) / 2, 1.05, xs[-1] - xs[0] + 0.7, 0.42,
        "embedding (100)", "net")
    box(ax, (xs[0] + xs[-1]) / 2, 1.85, xs[-1] - xs[0] + 0.7, 0.5,
        "bidirectional LSTM encoder (100 per direction)", "net")
    for x in xs:
        arrow(ax, (x, 0.42), (x, 0.84))
        arrow(ax, (x, 2.1), (x, 2.55))
        ax.add_patch(plt.Circle((x, 2.7), 0.13, facecolor="white", edgecolor="#555555"))
    for x, name in zip(xs[5:], ("$H_{i_1}$", "$H_{i_2}$", "$H_{o_1}$", "$H_{o_2}$", "$H_A$")):
        ax.text(x, 3.0, name, ha="center", fontsize=8)
    ax.text(xs[4], 3.0, "$H_A^1$", ha="center", fontsize=8)

    # learned begin states for the two previous cells
    box(ax, 0.75, 2.7, 1.15, 0.5, "begin states\n$H^{c-2}$, $H^{c-1}$", "state", size=8)

    # per block b: router, then input mutator or op mutator
    router_x = (xs[5] + xs[8]) / 2
    box(ax, router_x, 3.85, 3.1, 0.5, "Mut-router: FC on each of $H_{i_1..o_2}$, softmax\n"
        "-> which of $i_1, i_2, o_1, o_2$ (ID) to change", "decision", size=8)
    for x in xs[5:9]:
        arrow(ax, (x, 2.85), (router_x + (x - router_x) * 0.6, 3.6))
    box(ax, 3.1, 5.0, 3.9, 0.62, "IN-mutator (ID is an input): attention\n"
        "$v \\cdot \\tanh(W[H_{cand}; H_{ID}])$ over $H^{c-2}, H^{c-1}, H_A^1..H_A^{b-1}$\n"
        "softmax -> new input", "decision", size=8)
    box(ax, 8.1, 5.0, 3.3, 0.62, "OP-mutator (ID is an operation):\nFC($H_{ID}$), softmax "
        "over the 6 operations\n-> new operation", "decision", size=8)
    arrow(ax, (router_x - 0.9, 4.1), (3.9, 4.68))
    arrow(ax, (router_x + 0.9, 4.1), (7.6, 4.68))
    arrow(ax, (0.75, 2.95), (1.6, 4.68), connectionstyle="arc3,rad=-0.2")
    arrow(ax, (xs[4], 2.85), (2.6, 4.68), connectionstyle="arc3,rad=0.15")
    ax.text(0.1, 6.1, "every logit: / 5.0 (temperature),\nthen 2.5 tanh(.); repeated for\n"
            "every block b = 1..B", va="center", fontsize=7.5, style="italic")

    # the child, its reward and the update
    box(ax, 5.6, 6.1, 5.2, 0.55, "child = parent with one change per block; fine-tuned from "
        "the parent's weights;\nvalidation accuracy f", "learn", size=8.5)
    arrow(ax, (3.1, 5.32), (4.2, 5.82))
    arrow(ax, (8.1, 5.32), (7.0, 5.82))
    box(ax, 11.0, 3.6, 1.9, 1.3, "REINFORCE (Adam 0.001)\nreward tan(f pi / 2)\n"
        "+ 0.1 x entropy\n- moving-average\nbaseline", "learn", size=8)
    arrow(ax, (8.2, 6.1), (11.0, 4.28), connectionstyle="arc3,rad=-0.3")
    arrow(ax, (11.0, 2.95), (xs[-1] + 0.4, 1.85), colour="#aa3333",
          connectionstyle="arc3,rad=-0.2")
    ax.text(11.0, 2.2, "gradients to\nevery layer", fontsize=7.5, color="#aa3333",
            ha="center")
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    draw(Path(__file__).with_name("renas_controller.png"))
