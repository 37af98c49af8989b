"""What ``deapnas show`` and ``deapnas train`` do with a finished (or running) run directory:
a text summary, PNG plots, and a longer retraining of the pick scored on the test split."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import torch  # noqa: E402

from .data import Split  # noqa: E402
from .fitness import TrainEvaluator  # noqa: E402
from .graph import prune  # noqa: E402
from .run import BEST, CONFIG, read_history, write_json  # noqa: E402
from .runner import SearchConfig, make_evaluator  # noqa: E402
from .spaces import get_space  # noqa: E402


def load_run(directory: str | Path) -> tuple[SearchConfig, list[dict], dict | None]:
    """The config, history and best pick (None until the search ends) of a run directory."""
    directory = Path(directory)
    if not (directory / CONFIG).exists():
        raise ValueError(f"{directory} is not a deapnas run directory (no {CONFIG})")
    config = SearchConfig(**json.loads((directory / CONFIG).read_text()))
    best_path = directory / BEST
    best = json.loads(best_path.read_text()) if best_path.exists() else None
    return config, read_history(directory), best


def summary(directory: str | Path) -> str:
    """A few lines on the run: settings, evaluations, failures by reason, the pick."""
    config, history, best = load_run(directory)
    failures = Counter(_cause(r["reason"]) for r in history if r.get("reason"))
    lines = [f"run {directory}: {config.algorithm} on the {config.space} space, "
             f"dataset {config.dataset}, seed {config.seed}",
             f"evaluations: {len(history)} of {config.evaluations}"
             + (f", best single fitness {max(r['fitness'][0] for r in history):.4f}"
                if history else "")]
    lines += [f"  failed ({n}): {reason}" for reason, n in failures.most_common()]
    if best is None:
        lines.append("no final pick yet (the search has not finished)")
    else:
        lines.append(describe_best(config, best))
    return "\n".join(lines)


def _cause(reason: str) -> str:
    """A failure reason without the node it happened at, so that like failures group."""
    return reason.split(": ", 1)[1].split(":")[0] if reason.startswith("node ") else reason


def describe_best(config: SearchConfig, best: dict) -> str:
    """The final pick in words."""
    space = get_space(config.space)
    genome = best["genome"]  # the readable form when it is a string (an arch string)
    if not isinstance(genome, str):
        genome = repr(space.from_json(genome))
    how = ("best mean over all architectures: none was evaluated "
           f"{config.min_evaluations} times" if best["fallback"] else
           f"best mean of architectures evaluated at least {config.min_evaluations} times")
    measure = config.metric if config.tabular else "validation accuracy"
    text = (f"best architecture ({how}):\n  {genome}\n  {measure} {best['fitness']:.4f} "
            f"(mean of {best['times_evaluated']} evaluation(s))")
    if best.get("params") is not None:
        text += f", {best['params']:,} parameters"
    for column, value in best.get("report", {}).items():
        text += f"\n  {column}: {value:.4f}"
    return text


def plot_history(directory: str | Path) -> Path:
    """``fitness.png``: every evaluation's fitness and the best so far."""
    _, history, _ = load_run(directory)
    fitness = [r["fitness"][0] for r in history]
    running = [max(fitness[:i + 1]) for i in range(len(fitness))]
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.scatter(range(1, len(fitness) + 1), fitness, s=8, alpha=0.5, label="evaluation")
    axes.plot(range(1, len(fitness) + 1), running, color="C3", label="best so far")
    axes.set(xlabel="evaluation", ylabel="fitness", title="fitness over evaluations")
    axes.legend(loc="lower right")
    return _save(figure, Path(directory) / "fitness.png")


def plot_best(directory: str | Path) -> Path:
    """``best.png``: the pick's compiled graph, drawn left (input) to right (output)."""
    config, _, best = load_run(directory)
    if best is None:
        raise ValueError(f"{directory} has no final pick yet; finish or resume the search")
    space = get_space(config.space)
    graph = prune(space.to_graph(space.from_json(best["genome"])))
    for depth, layer in enumerate(nx.topological_generations(graph)):
        for node in layer:
            graph.nodes[node]["depth"] = depth
    labels = {n: _label(n, a, graph) for n, a in graph.nodes(data=True)}
    figure, axes = plt.subplots(figsize=(2 + 1.6 * (max(d for _, d in graph.nodes(
        data="depth")) + 1), 4))
    nx.draw_networkx(graph, nx.multipartite_layout(graph, subset_key="depth"), ax=axes,
                     labels=labels, node_color="#cfe2f3", node_size=1800, font_size=7)
    axes.set_axis_off()
    axes.set_title(f"best architecture, fitness {best['fitness']:.4f}")
    return _save(figure, Path(directory) / "best.png")


def _label(node, attrs: dict, graph: nx.DiGraph) -> str:
    if node in graph.graph["inputs"]:
        return "input"
    if node == graph.graph["output"]:
        return "output"
    if "label" in attrs:  # the space's own name for the node, e.g. CONV_3.N
        return attrs["label"]
    args = ",".join(f"{v}" for v in attrs.get("args", {}).values())
    return f"{attrs.get('op', 'identity')}\n{args}"


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def retrain(directory: str | Path, epochs: int = 20, device: str | None = None,
            channels: int | None = None) -> dict:
    """Train the pick from scratch on training + validation data for ``epochs`` epochs and
    score it on the test split (used here for the first and only time), optionally wider
    (``channels``; the paper retrains its pick at C = 128 and 256). Writes ``train.json`` and
    the weights to ``model.pt``. No augmentation is applied."""
    config, _, best = load_run(directory)
    if best is None:
        raise ValueError(f"{directory} has no final pick yet; finish or resume the search")
    if config.tabular:
        raise ValueError("a tabular run has no network to train: its table already holds the "
                         "trained accuracies (see best.json's report)")
    if device:
        config.device = device
    if channels:
        config.channels = channels
    evaluator: TrainEvaluator = make_evaluator(config)
    genome = get_space(config.space).from_json(best["genome"])
    data = evaluator.device_data
    both = Split(torch.cat([data.train.x, data.val.x]), torch.cat([data.train.y, data.val.y]))
    torch.manual_seed(config.seed)
    net = evaluator.network(genome)
    evaluator.fit(net, both, epochs)
    result = {"epochs": epochs, "channels": config.channels, "test_accuracy": evaluator.accuracy(net, data.test),
              "params": sum(p.numel() for p in net.parameters()), "test_images": len(data.test)}
    torch.save(net.state_dict(), Path(directory) / "model.pt")
    write_json(Path(directory) / "train.json", result)
    return result
