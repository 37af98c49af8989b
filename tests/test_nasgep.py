"""NASGEP: GEP chromosomes on DEAP, the nasgep space, the weight store, continued training,
the survivor rules, the options, and the registered method end to end through the command line
on digits (search, interrupted and resumed, show, train)."""
import copy
import json
import math
import multiprocessing
import operator
import pickle
import random
from pathlib import Path

import pytest
import torch
from deap import gp

import deapnas
from deapnas import gep, runner
from deapnas.augment import Augment
from deapnas.cli import main
from deapnas.data import Dataset, load_dataset, stratified_subset
from deapnas.fitness import TrainEvaluator
from deapnas.gep import Chromosome
from deapnas.compiler import compile_graph
from deapnas.methods import nasgep as method
from deapnas.networks import Cell
from deapnas.journal import Journal
from deapnas.rundir import BEST, read_history
from deapnas.spaces import get_space
from deapnas.spaces import nasgep as space
from deapnas.spaces.nasgep import NORMAL, REDUCTION
from deapnas.weight_store import WeightStore, apply_offers, concerning, entry_name

from conftest import single_thread, without_clock

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    """Digits with a small stratified training split (30 images per class), so that an
    epoch is a few steps."""
    data = load_dataset("digits", seed=0)
    train = data.train.subset(stratified_subset(data.train.y, 30, seed=0))
    return Dataset(data.name, train, data.val, data.test, data.num_classes)


def toy_pset() -> gp.PrimitiveSet:
    """add (arity 2), neg (arity 1), terminals a and b."""
    pset = gp.PrimitiveSet("toy", 0)
    pset.addPrimitive(operator.add, 2, name="add")
    pset.addPrimitive(operator.neg, 1, name="neg")
    pset.addTerminal(1, name="a")
    pset.addTerminal(2, name="b")
    return pset


GENE_IDS = [f"g{i}" for i in range(7)]


def chromosome_kinds():
    """(name, pset, head, head_functions_only) of every chromosome NASGEP uses."""
    return [("normal gene", space.gene_pset(NORMAL), 1, False),
            ("reduction gene", space.gene_pset(REDUCTION), 1, False),
            ("cell", space.cell_pset(GENE_IDS), 4, True)]


# -- GEP: structure and Karva decoding ---------------------------------------------------------

def test_tail_rule_is_enforced_at_construction():
    pset = toy_pset()
    assert gep.tail_length(3, gep.max_arity(pset)) == 4
    assert gep.tail_length(4, 2) == 5 and gep.tail_length(1, 2) == 2
    symbols = [pset.mapping[n] for n in "add neg add a b a b".split()]
    assert len(Chromosome(symbols, 3, pset)) == 7
    with pytest.raises(ValueError, match="tail of 3 x"):
        Chromosome(symbols[:-1], 3, pset)
    with pytest.raises(ValueError, match="only terminals"):
        Chromosome(symbols[:6] + [pset.mapping["add"]], 3, pset)
    with pytest.raises(ValueError, match="at least one symbol"):
        Chromosome(symbols[:1], 0, pset)
    with pytest.raises(ValueError, match="not in the primitive set"):
        Chromosome(symbols[:2] + [gp.Terminal("zz", True, object)] + symbols[3:], 3, pset)
    with pytest.raises(ValueError, match="unknown symbols"):
        Chromosome.from_string("add neg add | a b a c", pset)
    with pytest.raises(ValueError, match="separated by"):
        Chromosome.from_string("add neg add a b a b", pset)


@pytest.mark.parametrize("text, expected, coding", [
    # worked by hand, breadth first: add takes positions 1, 2; neg takes 3; add(2) takes 4, 5
    ("add neg add | a b a b", "add(neg(a), add(b, a))", 6),
    ("neg add neg | b a b a", "neg(add(neg(a), b))", 5),  # neg <- 1; add <- 2, 3; neg <- 4
    ("a add add | b b b b", "a", 1),
    ("add add add | a b a b", "add(add(a, b), add(a, b))", 7),
])
def test_karva_decoding_of_hand_worked_chromosomes(text, expected, coding):
    pset = toy_pset()
    chromosome = Chromosome.from_string(text, pset)
    tree = gep.karva(chromosome)
    assert str(tree) == expected
    assert len(gep.karva_arguments(chromosome)) == coding
    assert str(chromosome) == text and Chromosome.from_string(str(chromosome), pset) == chromosome
    # DEAP's own tree utilities work on the decoded expression
    assert tree.searchSubtree(0) == slice(0, len(tree))
    assert gp.compile(tree, pset) == eval(expected, {"add": operator.add, "neg": operator.neg,
                                                     "a": 1, "b": 2})


def test_karva_decoding_of_a_hand_worked_cell_and_gene():
    cell = space.cell_from_string("cat add add add | gA gB gC gD gE")
    # 0 cat -> 1, 2; 1 add -> 3, 4; 2 add -> 5, 6; 3 add -> 7, 8
    assert str(gep.karva(cell)) == "cat(add(add(gD, gE), gA), add(gB, gC))"
    assert gep.karva(cell).height == 3
    gene = Chromosome.from_string("sep3x3 | dep5x5_h2 h1", space.gene_pset(NORMAL))
    assert str(gep.karva(gene)) == "sep3x3(dep5x5_h2)"
    assert gp.compile(gep.karva(gene), space.gene_pset(NORMAL)) == ("sep3x3", "dep5x5_h2")
    assert gep.tree_arguments(gep.karva(cell)) == [[1, 6], [2, 5], [3, 4], [], [], [], [7, 8],
                                                   [], []]


# -- GEP operators -----------------------------------------------------------------------------

def random_chromosome(pset, head, head_functions_only):
    return gep.init_chromosome(Chromosome, pset, head, head_functions_only)


def assert_valid(chromosome, pset, head):
    gep.check(chromosome, pset)
    assert chromosome.head == head
    tree = gep.karva(chromosome)
    assert tree.searchSubtree(0) == slice(0, len(tree))


@pytest.mark.parametrize("name, pset, head, functions_only", chromosome_kinds())
def test_every_operator_keeps_every_chromosome_valid(name, pset, head, functions_only):
    random.seed(2020)
    changed = dict.fromkeys(["mutation", "is", "ris", "one point", "two point"], 0)
    for _ in range(2000):
        first = random_chromosome(pset, head, functions_only)
        second = random_chromosome(pset, head, functions_only)
        before = (str(first), str(second))
        gep.mut_point(first, pset, head_functions_only=functions_only)
        changed["mutation"] += str(first) != before[0]
        before = (str(first), str(second))
        gep.transpose_is(first, pb=1.0)
        changed["is"] += str(first) != before[0]
        gep.transpose_ris(second, pb=1.0)
        changed["ris"] += str(second) != before[1]
        before = (str(first), str(second))
        gep.cx_one_point(first, second, pb=1.0)
        changed["one point"] += (str(first), str(second)) != before
        before = (str(first), str(second))
        gep.cx_two_point(first, second, pb=1.0)
        changed["two point"] += (str(first), str(second)) != before
        for chromosome in (first, second):
            assert_valid(chromosome, pset, head)
    assert changed["mutation"] > 1000 and changed["one point"] > 1000
    assert changed["two point"] > 1000
    # a head of one symbol has no IS target, and RIS can only copy its root onto itself
    assert (changed["is"] > 300 and changed["ris"] > 100) if head > 1 else \
        changed["is"] == changed["ris"] == 0


@pytest.mark.parametrize("name, pset, head, functions_only", chromosome_kinds())
def test_reproduction_keeps_parents_and_children_valid(name, pset, head, functions_only):
    random.seed(2020)
    parents = [random_chromosome(pset, head, functions_only) for _ in range(20)]
    texts = [str(p) for p in parents]
    for _ in range(1000):
        first, second = random.sample(parents, 2)
        for child in gep.reproduce(first, second, pset, functions_only):
            assert_valid(child, pset, head)
    assert [str(p) for p in parents] == texts


def test_cell_heads_mutate_only_into_functions():
    random.seed(2020)
    pset = space.cell_pset(GENE_IDS)
    functions = {"add", "cat"}
    for _ in range(2000):
        cell = random_chromosome(pset, 4, True)
        assert {s.name for s in cell[:4]} <= functions
        cell[1] = pset.mapping["g0"]  # a terminal that IS transposition could have put there
        gep.mut_point(cell, pset, pb=1.0, head_functions_only=True)
        assert {s.name for s in cell[:4]} <= functions
    heads = set()
    for _ in range(200):  # without the rule a head symbol can become a terminal
        cell = random_chromosome(pset, 4, True)
        gep.mut_point(cell, pset, pb=1.0)
        heads |= {s.name for s in cell[:4]}
    assert heads - functions


def test_ris_puts_a_function_at_the_root_and_keeps_the_tail():
    random.seed(2020)
    pset = toy_pset()
    changed = 0
    for _ in range(500):
        chromosome = random_chromosome(pset, 3, False)
        before = list(chromosome)
        gep.transpose_ris(chromosome, pb=1.0)
        assert chromosome[3:] == before[3:]
        if chromosome != before:  # RIS did something: a function from the head is the root
            changed += 1
            assert chromosome[0].arity > 0 and chromosome[0] in before[:3]
    assert changed > 100


def test_recombination_refuses_chromosomes_of_different_structures():
    pset = toy_pset()
    with pytest.raises(ValueError, match="one structure"):
        gep.cx_one_point(random_chromosome(pset, 3, False), random_chromosome(pset, 2, False))


# -- the space ---------------------------------------------------------------------------------

def hand_model() -> space.Model:
    genes = {"n1": Chromosome.from_string("sep3x3 | dep5x5_h2 h1", space.gene_pset(NORMAL)),
             "n2": Chromosome.from_string("add | h1 h1", space.gene_pset(NORMAL)),
             "r1": Chromosome.from_string("add | isep1x7_h1 conv1x1_h2",
                                          space.gene_pset(REDUCTION)),
             "r2": Chromosome.from_string("dep3x5 | sep7x1_h1 dep3x3_h1",
                                          space.gene_pset(REDUCTION))}
    return space.Model(space.cell_from_string("cat add n1 n2 | n2 n1 n1 n2 n2"),
                       space.cell_from_string("add r1 cat add | r2 r1 r1 r2 r1"), genes)


def test_a_hand_worked_cell_graph():
    model = hand_model()
    # normal cell [cat add n1 n2 | n2 ...]: position 0 cat <- 1, 2; 1 add <- 3, 4, so
    # cat(add(n2, n2), n1), whose prefix-ordered nodes are 0 cat, 1 add, 2 n2, 3 n2, 4 n1
    graph = space.to_graph(model)
    assert graph.graph["inputs"] == ["h2", "h1"] and graph.graph["output"] == "c0"
    assert graph.nodes["c0"]["combine"] == "concat" and graph.nodes["c1"]["combine"] == "sum"
    assert set(graph.predecessors("c0")) == {"c1", "c4.0"}
    assert set(graph.predecessors("c1")) == {"c2.0", "c3.0"}
    assert [graph.nodes[n]["gene"] for n in ("c2.0", "c3.0", "c4.0")] == ["n2", "n2", "n1"]
    # gene n1 = sep3x3(dep5x5 reading h2): two stride-1 convolutions in a row
    assert graph.nodes["c4.0"]["args"] == {"kind": "separable", "kernel": [3, 3], "stride": 1}
    assert list(graph.predecessors("c4.0")) == ["c4.1"]
    assert graph.nodes["c4.1"]["args"]["kind"] == "depthwise"
    assert list(graph.predecessors("c4.1")) == ["h2"]
    # gene n2 = add(h1, h1): two identity nodes, so the sum is twice h1
    assert set(graph.predecessors("c2.0")) == {"c2.1", "c2.2"}
    assert all(list(graph.predecessors(n)) == ["h1"] for n in ("c2.1", "c2.2"))
    # reduction [add r1 cat add | r2 r1 r1 ...]: add(r1, cat(add(r1, r1), r2)), prefix nodes
    # 0 add, 1 r1, 2 cat, 3 add, 4 r1, 5 r1, 6 r2; convolutions reading an input have
    # stride 2, the one reading a convolution (r2's dep3x5) stride 1
    reduction = space.cell_graph(model.reduction, model.genes, reduction=True)
    strides = {n: a["args"]["stride"] for n, a in reduction.nodes(data=True)
               if a.get("op") == "gep_conv"}
    assert strides == {"c1.1": 2, "c1.2": 2, "c4.1": 2, "c4.2": 2, "c5.1": 2, "c5.2": 2,
                       "c6.0": 1, "c6.1": 2}
    for node, stride in strides.items():
        assert (set(reduction.predecessors(node)) <= {"h1", "h2"}) == (stride == 2)
    assert list(reduction.predecessors("c6.0")) == ["c6.1"]


def test_reduction_cells_halve_and_concat_grows_the_width():
    model = hand_model()
    normal = compile_graph(space.to_graph(model), [(8, 16, 16)] * 2)
    assert normal.output_shape == (16, 16, 16)  # cat of two 8-wide branches
    reduction = compile_graph(space.cell_graph(model.reduction, model.genes, reduction=True),
                              [(8, 16, 16)] * 2)
    assert reduction.output_shape == (8, 8, 8)
    net = space.build_network(model, (3, 32, 32), 10, channels=8, cells_per_stage=2)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("kind", ["pointwise", "depthwise", "separable", "inverse"])
def test_the_convolution_block(kind):
    block = space.gep_conv(6, kind, (3, 5), stride=2)
    assert isinstance(block[0], torch.nn.ReLU) and isinstance(block[-1], torch.nn.BatchNorm2d)
    assert block(torch.randn(2, 6, 9, 9)).shape == (2, 6, 5, 5)
    convs = [m for m in block if isinstance(m, torch.nn.Conv2d)]
    expected = {"pointwise": [1], "depthwise": [6], "separable": [1, 6], "inverse": [6, 1]}
    assert [c.groups for c in convs] == expected[kind]
    assert len(space.CONVOLUTIONS) == 19


def test_random_models_build_train_and_round_trip_through_json():
    random.seed(2020)
    model_class = get_space("nasgep").individual()
    for _ in range(10):
        model = space.init_model(model_class)
        assert not model.fitness.valid and set(model.genes) == set(
            space.terminal_names(model.normal) + space.terminal_names(model.reduction))
        data = space.to_json(model)
        assert space.from_json(data) == model and space.from_json(data, model_class) == model
        assert space.key(space.from_json(data)) == space.key(model)
        assert pickle.loads(pickle.dumps(model)) == model
        space.mutate(model)
        assert set(model.genes) >= set(space.terminal_names(model.normal))
        net = space.build_network(model, (1, 8, 8), 10, channels=4, cells_per_stage=1)
        net(torch.randn(3, 1, 8, 8)).sum().backward()


def test_gene_ids_name_content_and_from_json_reports_missing_genes():
    gene = Chromosome.from_string("add | h1 h2", space.gene_pset(NORMAL))
    assert space.gene_id(gene, NORMAL) == space.gene_id(copy.deepcopy(gene), NORMAL)
    assert space.gene_id(gene, NORMAL).startswith("n")
    data = space.to_json(hand_model())
    del data["genes"]["n2"]
    with pytest.raises(ValueError, match="n2"):
        space.from_json(data)


def test_shared_units_name_blocks_and_genes_at_their_width():
    model = hand_model()
    net = space.build_network(model, (3, 16, 16), 10, channels=4, cells_per_stage=1)
    keys = [key for key, _ in space.shared_units(net)]
    assert "conv:sep3x3@4" in keys and "conv:isep1x7/2@8" in keys
    assert "gene:n1@4" in keys and "gene:r2@16" in keys
    assert keys.index("gene:n1@4") > max(i for i, k in enumerate(keys) if k.startswith("conv"))
    identities = space.share_identities(model)
    assert {key.rsplit("@", 1)[0] for key in keys} == identities
    gene_units = dict((k, m) for k, m in space.shared_units(net) if k.startswith("gene:r2"))
    assert set(gene_units["gene:r2@16"].keys()) == {"0", "1"}  # dep3x5(sep7x1_h1); slot 2 is
    # non-coding


# -- the weight store --------------------------------------------------------------------------

def unit(seed: int) -> dict:
    torch.manual_seed(seed)
    return space.gep_conv(4, "separable", (3, 3)).state_dict()


def test_store_round_trip_is_content_named_and_immutable(tmp_path):
    store = WeightStore(tmp_path / "store")
    units = {"conv:sep3x3@4": unit(0), "gene:n1@4": unit(1)}
    name = store.put(units)
    assert name == entry_name(units) and store.put(copy.deepcopy(units)) == name
    stamp = store.path(name).stat().st_mtime_ns
    store.put(units)
    assert store.path(name).stat().st_mtime_ns == stamp  # an entry is never written twice
    loaded = store.load(name)
    assert set(loaded) == set(units)
    assert all(torch.equal(loaded[k][n], units[k][n]) for k in units for n in units[k])
    assert store.put({"conv:sep3x3@4": unit(2)}) != name
    index = {}
    apply_offers(index, {"conv:sep3x3@4": name}, 0.5)
    apply_offers(index, {"conv:sep3x3@4": "other.pt"}, 0.4)  # not better: ignored
    assert index == {"conv:sep3x3@4": [name, 0.5]}
    assert concerning(index, {"conv:sep3x3"}) == index and concerning(index, {"gene:n1"}) == {}
    assert [p.name for p in store.stale([index])] == [store.put({"conv:sep3x3@4": unit(2)})]


UNITS = [{"conv:sep3x3@4": unit(seed), "gene:n1@4": unit(seed + 100)} for seed in range(12)]


def _write_entries(root: str, order: list, queue) -> None:
    """Write the ``UNITS`` entries in ``order``, reading every entry on disk after each write."""
    store = WeightStore(root)
    names = []
    for index in order:
        names.append(store.put(UNITS[index]))
        for path in Path(root).glob("*.pt"):  # everything written so far, by anyone, loads
            store.load(path.name)
    queue.put(names)


def test_concurrent_writers_never_tear_an_entry(tmp_path):
    """Three processes (forked, so they start at once) write the same twelve entries in
    different orders into one store while reading everything there."""
    random.seed(2020)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    root = str(tmp_path / "store")
    orders = [list(range(12)), list(reversed(range(12))), random.sample(range(12), 12)]
    jobs = [context.Process(target=_write_entries, args=(root, order, queue))
            for order in orders]
    for job in jobs:
        job.start()
    written = [queue.get(timeout=120) for _ in jobs]
    for job in jobs:
        job.join(timeout=120)
        assert job.exitcode == 0
    expected = {entry_name(units) for units in UNITS}
    assert all(set(names) == expected for names in written)
    assert {p.name for p in Path(root).iterdir()} == expected  # no temporary file left
    store = WeightStore(root)
    for name in expected:
        assert entry_name(store.load(name)) == name


def sharing_evaluator(data, store, sharing=True):
    """The tiny preset's evaluator, one batch per epoch."""
    options = method.Options.tiny(batch_size=len(data.train), no_sharing=not sharing)
    return method.make_evaluator(options, data, store=store, device="cpu")


def test_new_networks_load_shared_weights_and_offer_better_ones(digits, tmp_path):
    model = hand_model()
    evaluator = sharing_evaluator(digits, tmp_path / "store")
    model.epochs, model.shared = 1, {}
    first = evaluator(model)
    offers = first.info["shared"]
    net = evaluator.network(model)
    assert set(offers) == {key for key, _ in space.shared_units(net)}
    index = apply_offers({}, offers, first[0])
    # a new individual with these genes starts from the stored weights, not at random
    model.shared, model.eval_seed = concerning(index, space.share_identities(model)), 1
    fresh = evaluator.network(model)
    inherited = evaluator.inherit(fresh, model)
    stored = evaluator.store.load(offers["gene:n1@4"])["gene:n1@4"]
    units = dict(space.shared_units(fresh))
    assert all(torch.equal(units["gene:n1@4"].state_dict()[n], t) for n, t in stored.items())
    shared_parameters = {id(p) for _, module in space.shared_units(fresh)
                         for p in module.parameters()}
    assert {name for name, p in fresh.named_parameters() if id(p) in shared_parameters} == \
        set(inherited)
    second = evaluator(model)
    assert second.info["inherited"] == len(inherited)
    assert set(second.info["shared"]) <= set(offers)  # only keys it beats
    assert all(second[0] > index[k][1] for k in second.info["shared"])


def test_sharing_off_loads_and_offers_nothing(digits, tmp_path):
    evaluator = sharing_evaluator(digits, tmp_path / "store", sharing=False)
    model = hand_model()
    model.epochs = 1
    model.shared = {"gene:n1@4": ["missing.pt", 0.0]}
    result = evaluator(model)
    assert "shared" not in result.info and "inherited" not in result.info
    assert not (tmp_path / "store").exists()


# -- continued training ------------------------------------------------------------------------

def test_training_continues_from_a_saved_state(digits, tmp_path):
    """Two evaluations of one epoch each, the second resumed from the first's saved state,
    train like one evaluation of two epochs (one full batch per epoch, so the order of the
    images does not matter): same weights, same schedule, same optimizer state."""
    whole = TrainEvaluator(lambda ind, shape, classes: space.build_network(
        ind, shape, classes, channels=4, cells_per_stage=1), digits, epochs=4,
                           batch_size=len(digits.train), optimizer="sgd", lr=0.1,
                           schedule="cosine", device="cpu")
    model = hand_model()
    model.epochs, model.save_state_to = 2, str(tmp_path / "whole.pt")
    together = whole(model)
    model.epochs, model.save_state_to = 1, str(tmp_path / "m-e1.pt")
    first = whole(model)
    model.resume_from, model.save_state_to = model.save_state_to, str(tmp_path / "m-e2.pt")
    model.eval_seed = 99  # a resumed run draws no new initialisation
    second = whole(model)
    assert (first.info["trained_epochs"], second.info["trained_epochs"]) == (1, 2)
    assert second[0] == pytest.approx(together[0], abs=0.02)
    a, b = torch.load(tmp_path / "whole.pt"), torch.load(tmp_path / "m-e2.pt")
    assert a["schedule"]["last_epoch"] == b["schedule"]["last_epoch"] == 2
    assert a["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
        b["optimizer"]["param_groups"][0]["lr"])
    for name, tensor in a["model"].items():
        assert torch.allclose(tensor.float(), b["model"][name].float(), atol=1e-4), name


# -- survivor rules ----------------------------------------------------------------------------

MODEL = get_space("nasgep").individual()


def fake_model(name, value, born, epochs=1, reason=None, reduction="R1"):
    model = MODEL(*vars(hand_model()).values())
    model.model_id, model.born, model.trained_epochs = name, born, epochs
    model.fitness.values = (value,)
    model.info, model.reduction_id = {"reason": reason}, reduction
    return model


def names(models):
    return [m.model_id for m in models]


def test_survivors_keep_the_best_kill_the_oldest_drop_retired_and_trim():
    models = [fake_model("old", 0.9, born=0), fake_model("best", 0.95, born=1, epochs=10),
              fake_model("retired", 0.93, born=1, epochs=10), fake_model("a", 0.5, born=2),
              fake_model("b", 0.7, born=2), fake_model("c", 0.6, born=3),
              fake_model("failed", -math.inf, born=3, reason="too big")]
    # the best survives although retired; the oldest dies although fit
    assert names(method.select_survivors(models, 3, 10)) == ["best", "b", "c"]
    assert names(method.select_survivors(models, 10, 10)) == ["best", "b", "c", "a"]
    # the oldest to die is the oldest other than the best
    assert names(method.select_survivors(models[:1] + models[3:], 10, 10)) == ["old", "b", "c"]


def component(name, value=None, dead=False):
    cell = method._adopt(space.random_cell(method.Component, GENE_IDS), name)
    if value is not None:
        cell.fitness.values = (value,)
    cell.dead = dead
    return cell


def test_reduction_cells_in_use_survive_dead_ones_do_not_reproduce_or_stay():
    random.seed(2020)
    cells = {c.id: c for c in [component("R1", 0.1), component("R2", 0.9, dead=True),
                               component("R3", 0.8), component("R4", 0.7), component("R5")]}
    models = [fake_model("m", 0.5, 0, reduction="R1"), fake_model("n", 0.5, 0, reduction="R1")]
    kept = method.select_reductions(cells, models, size=2)
    assert list(kept) == ["R1", "R3", "R4"]  # 2 fittest living ones, and the one in use
    models.append(fake_model("o", 0.5, 0, reduction="R2"))
    assert "R2" in method.select_reductions(cells, models, size=2)


def test_gene_kill_and_breeding_counts():
    random.seed(2020)
    pool = {c.id: c for c in [component("g0", 0.2), component("g1", 0.9), component("g2"),
                              component("g3", 0.1)]}
    assert list(method.kill_genes(pool, used={"g3"}, threshold=0.5)) == ["g1", "g2", "g3"]
    assert list(method.kill_genes(pool, {"g3"}, 0.5, kill_untried=True)) == ["g1", "g3"]
    assert list(method.kill_genes(pool, set(), None)) == list(pool)
    assert method.new_gene_count(50, (2, 10), 100) == 10
    assert method.new_gene_count(95, (2, 10), 100) == 5
    assert method.new_gene_count(100, (2, 10), 100) == 2
    # at the cap the C_min new genes replace the weakest unused genes, never-used ones first
    assert list(method.make_room(pool, {"g3"}, 2, max_genes=4)) == ["g1", "g3"]
    assert list(method.make_room(pool, set(), 2, max_genes=10)) == list(pool)


def test_thresholds_follow_the_pith_best_model():
    models = [fake_model(str(i), v, 0) for i, v in enumerate([0.2, 0.8, 0.6, 0.4])]
    assert method.thresholds(models, 3) == (0.4, pytest.approx(0.3))
    assert method.thresholds(models, 10, 0.5) == (0.2, 0.1)
    assert method.thresholds([], 3) is None


def test_options_are_the_papers_and_refuse_what_cannot_work(digits):
    paper = method.Options()
    assert (paper.population, paper.channels, paper.cells, paper.max_params, paper.epochs,
            paper.lr, paper.batch_size, paper.val_fraction) == (10, 16, 3, 300_000, 10, 0.1,
                                                                 512, 0.1)
    assert (paper.genes, paper.max_genes, paper.min_new_genes, paper.max_new_genes,
            paper.bonus_factor, paper.cell_head, paper.gene_head) == (50, 100, 2, 10, 0.75, 4, 1)
    recipe = paper.recipe()
    assert (recipe.optimizer, recipe.schedule, recipe.epochs, recipe.momentum,
            recipe.weight_decay, recipe.augment) == ("sgd", "cosine", 10, 0.9, 5e-4, None)
    final = paper.final_recipe()
    assert (final.epochs, final.batch_size, final.lr, final.schedule, final.weight_decay) == \
        (300, 128, 0.025, "cosine", 5e-4)
    assert final.augment == Augment(crop_padding=4, flip=True, autoaugment="cifar10", cutout=16)
    assert paper.final_recipe(epochs=7).epochs == 7 and paper.final_channels == 64
    config, options = runner.settings(method.METHOD, "paper")
    assert (config.dataset, config.time_limit, config.evaluations) == \
        ("cifar10", None, method.PAPER_EVALUATIONS)
    assert options == paper
    config, options = runner.settings(method.METHOD, "tiny", population=3)
    assert config.dataset == "digits" and options == method.Options.tiny(population=3)
    for bad, message in [(dict(min_new_genes=5, max_new_genes=2), "--min-new-genes"),
                         (dict(genes=20, max_genes=10), "--genes"),
                         (dict(evaluations=None), "--evaluations")]:
        config, options = runner.settings(method.METHOD, "tiny", **bad)
        with pytest.raises(ValueError, match=message):
            runner.validate(config, options, method.METHOD)
    with pytest.raises(ValueError, match="store"):
        method.make_evaluator(method.Options.tiny(), digits, device="cpu")


# -- the registered method, through the command line ---------------------------------------------

def search_args(out, *extra):
    """A tiny search of 2 models, stopped at the generation in which 8 epoch-trainings are
    done, with a checkpoint at every generation."""
    return ["search", "--algorithm", "nasgep", "--evaluations", "8", "--population", "2",
            "--reductions", "2", "--batch-size", "64", "--checkpoint-every", "1",
            "--checkpoint-gap", "0", "--out", str(out), "--quiet", *extra]


def comparable(records):
    """History records without what the clock decides (elapsed, training seconds)."""
    return [{**r, "info": {k: v for k, v in r["info"].items() if k != "train_seconds"}}
            for r in without_clock(records)]


def last_checkpoint(directory):
    with Journal(directory, space.SPACE, MODEL) as journal:
        return journal.restore()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny search run to its end by ``deapnas search``; its run directory. Checkpoints are
    due only before the first evaluation, so the last one is the one the journal writes when
    the loop finds the budget spent."""
    out = tmp_path_factory.mktemp("nasgep") / "run"
    torch.manual_seed(0)
    with single_thread():  # as the tests that compare their runs with it
        assert main(search_args(out, "--checkpoint-every", "100")) == 0
    return out


def test_a_tiny_search_through_the_cli(finished):
    history, options = read_history(finished), method.Options.tiny(population=2)
    logbook = [json.loads(line) for line in (finished / "logbook.jsonl").read_text().split("\n")
               if line]
    assert [record["gen"] for record in logbook] == [1, 2] and len(history) >= 8
    assert len(history) == sum(record["nevals"] for record in logbook)
    assert all(r["reason"] is None and r["info"]["epochs"] == 1 for r in history)
    best = json.loads((finished / BEST).read_text())
    assert best["fitness"] == max(r["fitness"][0] for r in history) > 0.2
    models = {}
    for record in history:  # each model's records: epochs 1, 2, 3... and the same genome
        models.setdefault(record["info"]["model"], []).append(record)
    for records in models.values():
        assert [r["info"]["trained_epochs"] for r in records] == \
            list(range(1, len(records) + 1))
        assert len({json.dumps(r["genome"]) for r in records}) == 1
        assert len(records) <= options.epochs


def test_every_epoch_training_is_recorded_with_the_bonus_epoch_above_t_c(finished):
    history, population = read_history(finished), 2
    calls = [(r["info"]["model"], r["info"]["trained_epochs"] - 1, r["fitness"][0])
             for r in history]
    first = calls[:population]  # the first population: one epoch each, no bonus
    assert all(before == 0 for _, before, _ in first)
    assert calls[population][1] == 0  # then the children
    logbook = [json.loads(line) for line in (finished / "logbook.jsonl").read_text().split("\n")
               if line]
    born, last = set(), {}  # the models born so far, and each one's latest fitness
    for record in logbook:  # per generation: T_c from the models alive before its children
        generation, calls = calls[:record["nevals"]], calls[record["nevals"]:]
        alive = sorted({m: last[m] for m, _, _ in generation if m in born}.values() or
                       [value for _, _, value in generation[:population]], reverse=True)
        t_c = 0.75 * alive[min(population, len(alive)) - 1]  # T_g: the P_i-th best (P_i = 2)
        children = [c for c in generation if c[0] not in born and c[1] <= 1
                    and c[0] not in {m for m, _, _ in generation[:population]}]
        fitness = {model: value for model, before, value in children if before == 0}
        bonus = {model for model, before, _ in children if before == 1}
        assert bonus == {m for m, value in fitness.items() if value >= t_c}
        born |= {m for m, _, _ in generation}
        last.update((m, value) for m, _, value in generation)


def test_the_checkpoint_holds_the_three_populations_and_only_their_files_stay(finished):
    state, options = last_checkpoint(finished), method.Options.tiny()
    assert state["generation"] == 2
    t_g, t_c = state["thresholds"]
    assert t_c == pytest.approx(0.75 * t_g)
    for kind in (NORMAL, REDUCTION):
        assert len(state["genes"][kind]) <= options.max_genes
        used = {g for m in state["population"] for g in m.genes if g[0] == kind[0]}
        assert used <= {g["id"] for g in state["genes"][kind]}  # the genes in use survive
    assert {m.reduction_id for m in state["population"]} <= \
        {c["id"] for c in state["reductions"]}
    # the run kept the files this checkpoint needs (the models' latest training states, the
    # hall of fame's, the store entries of the index) and deleted every other one
    needed = {f"{m.model_id}-e{m.trained_epochs}.pt"
              for m in state["population"] + state["halloffame"]}
    assert {p.name for p in (finished / method.MODELS).iterdir()} == needed
    entries = {entry for entry, _ in state["store_index"].values()}
    assert entries and {p.name for p in (finished / method.STORE).iterdir()} == entries
    assert method.stale_files(state, finished / method.MODELS, finished / method.STORE) == []


def test_an_interrupted_search_resumes_to_the_same_history_and_pick(finished, tmp_path,
                                                                     monkeypatch, capsys):
    real, calls = method.make_evaluator, {"n": 0}

    def interrupting(*args, **kwargs):
        evaluate = real(*args, **kwargs)

        def wrapper(individual):
            calls["n"] += 1
            if calls["n"] == 7:
                raise KeyboardInterrupt
            return evaluate(individual)
        return wrapper

    monkeypatch.setattr(method, "make_evaluator", interrupting)
    out = tmp_path / "broken"
    torch.manual_seed(0)
    assert main(search_args(out)) == 130
    assert "deapnas resume" in capsys.readouterr().err and len(read_history(out)) == 6
    monkeypatch.setattr(method, "make_evaluator", real)
    assert main(["resume", str(out), "--quiet"]) == 0
    assert comparable(read_history(out)) == comparable(read_history(finished))
    assert json.loads((out / BEST).read_text()) == json.loads((finished / BEST).read_text())


def test_show_draws_both_cells_train_runs_the_final_recipe_and_export_rebuilds_it(finished,
                                                                                 capsys):
    assert main(["show", str(finished)]) == 0
    assert (finished / "best.png").stat().st_size > 10_000
    best = json.loads((finished / BEST).read_text())
    assert set(space.SPACE.graphs(space.from_json(best["genome"]))) == {NORMAL, REDUCTION}
    assert main(["train", str(finished), "--epochs", "1"]) == 0
    trained = json.loads((finished / "train.json").read_text())
    assert (trained["epochs"], trained["channels"]) == (1, method.TINY["final_channels"])
    assert 0 <= trained["test_accuracy"] <= 1 and trained["params"] > best["params"]
    assert "test accuracy" in capsys.readouterr().out
    net = deapnas.load_model(finished)  # the final width, as deapnas export rebuilds it
    assert sum(p.numel() for p in net.parameters()) == trained["params"]
    assert main(["export", str(finished)]) == 0 and (finished / "export" / "model.pt2").exists()


def test_the_final_training_builds_wider_with_drop_path_and_augments(digits):
    options = method.Options.tiny(drop_path=0.2, final_channels=6)
    evaluator = method.final_evaluator(options, digits, device="cpu", epochs=1)
    assert evaluator.recipe == options.final_recipe(1) and evaluator.max_params is None
    model = hand_model()
    net = evaluator.network(model)
    cells = [c for c in net.cells if isinstance(c, Cell)]
    assert net.stem[0].out_channels == 6 and cells and evaluator.recipe.drop_path == 0.2
    result = evaluator(model)
    assert result.info["epochs"] == 1 and 0 <= result[0] <= 1


@pytest.mark.slow
def test_a_search_on_mnist_images_learns(mnist_dir, tmp_path):
    out = tmp_path / "mnist"
    assert main(["search", "--algorithm", "nasgep", "--dataset", "idx", "--data-dir",
                 str(mnist_dir), "--evaluations", "30", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / BEST).read_text())["fitness"] > 0.8
