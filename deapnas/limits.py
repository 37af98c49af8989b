"""The upper bounds of deapnas, in one place: how large an option may be, and how large a
genome read from a run directory may be.

A run directory may come from someone else, and a command line may hold a typing slip; either
could otherwise ask for a network of a billion channels or a population of a trillion, which
fails only after minutes and gigabytes, or leaves files behind. Every option and every genome
is checked against these limits before anything is built, drawn or written, and the error names
the flag (``--channels must be at most 4096, not 100000 (allowed: 1 to 4096)``) or the file and
the field (``best.json: genome: cell 1: channels 1000000000 exceeds the limit of 4096``).

The limits sit far above every published setting (the papers' largest networks have a few
dozen cells of a few hundred channels and some tens of millions of parameters), so that they
refuse only what no machine would hold or no search would want. Raise one here if your work
needs more.
"""
from __future__ import annotations

# -- networks: options and genomes alike ---------------------------------------------------------

#: Channels of any layer: width options (``--channels``, ``--final-channels``) and genome widths.
MAX_CHANNELS = 4096
#: Cells: a MiniGen encoding's cells, and the cell options (``--cells``, ``--final-cells``).
MAX_CELLS = 64
#: Blocks of one cell: a MiniGen cell's ``b_i``, a NASNet cell's B (``--blocks``).
MAX_BLOCKS = 64
#: Operations of one MiniGen action list (``--max-actions``).
MAX_ACTIONS = 16
#: Operations (graph nodes) of one network or cell: a MiniGen encoding's actions over all its
#: blocks, a macro genome's layers. Compiling and drawing take time that grows with it.
MAX_NODES = 1000
#: Connection genes of a macro genome.
MAX_CONNECTIONS = 16 * MAX_NODES
#: Genes of a NASGEP model, and of a gene pool (``--genes``, ``--max-genes``).
MAX_GENES = 1024
#: Head of a GEP chromosome (``--cell-head``, ``--gene-head``); its tail is one longer.
MAX_HEAD = 16
#: Symbols of a GEP chromosome read from a file: the longest head and its tail.
MAX_SYMBOLS = 2 * MAX_HEAD + 1
#: Kernel size of a macro layer gene (``CONV_k``, ``POOL_k``).
MAX_KERNEL = 15
#: Parameters of a network: a genome read from a run directory is counted (shape inference on
#: PyTorch's meta device, nothing allocated) before it is built; also the largest
#: ``--max-params``. 100 million parameters take 400 MB in float32, before the gradients and
#: the optimizer's state.
MAX_PARAMETERS = 100_000_000

# -- searches ------------------------------------------------------------------------------------

#: Individuals of a population, samples, tournaments, CMA-ES's λ (``--population``,
#: ``--popsize``...).
MAX_POPULATION = 100_000
#: Evaluations of a run (``--evaluations``), and counts that are at most as many: generations,
#: winners, checkpoint spacing.
MAX_EVALUATIONS = 10_000_000
#: Evaluations at once (``--workers``): worker processes or Ray actors.
MAX_WORKERS = 256
#: Torch CPU threads of one evaluation (``--threads``).
MAX_THREADS = 1024
#: Further attempts for a candidate whose worker died (``--retries``).
MAX_RETRIES = 100
#: Seconds (``--time-limit``, ``--eval-timeout``): one year.
MAX_SECONDS = 365 * 24 * 3600.0
#: A RENAS controller's embedding and LSTM size (``--controller-size``).
MAX_CONTROLLER_SIZE = 1024

# -- training ------------------------------------------------------------------------------------

#: Training epochs of any kind (``--epochs``, ``--final-epochs``, ``--warmup``...).
MAX_EPOCHS = 100_000
#: Images per batch, and batches per scoring.
MAX_BATCH_SIZE = 65_536
#: Images per class of a stratified subset (``--train-per-class``, ``--score-per-class``).
MAX_PER_CLASS = 1_000_000
#: Learning rates (``--lr``, ``--final-lr``, ``--controller-lr``).
MAX_LR = 100.0
#: Weights, factors and scales that multiply a loss, a rate or a logit (``--zeta``,
#: ``--new-lr-factor``, ``--temperature``...).
MAX_FACTOR = 1_000_000.0
#: Pixels of an augmentation (``--crop-padding``, ``--cutout``).
MAX_PIXELS = 1024
