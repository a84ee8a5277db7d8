"""Robustness (Section 4.2): Table 1 (clean and PGD test accuracy, ERM vs SD) and Fig. 2 (CDF of the minimal
L∞ perturbation that flips a test prediction, ERM vs SD).

Command:   make robustness                       (Fashion-MNIST at full size: Table 1 and Fig. 2 analogues)
           make robustness ARGS="--resume NAME"  (continue an interrupted run from its checkpoints)
           make robustness ARGS="--config configs/robustness.py:cifar10 --config.data.dir=DIR"   (a GPU)
           make robustness ARGS="--config.table.restarts=2 --config.table.epochs=1"              (quick look)
Variants:  cifar2, cifar10, cifar100 (the paper's protocols, SPEC §5.1; they need the CIFAR files: `make data-cifar`
           and a GPU), small, cifar2_small, cifar10_small, cifar100_small (seconds; tests: tiny Fashion IDX files or
           generated CIFAR pickles passed with --config.data.dir).

Default (Fashion-MNIST, no CIFAR here): (a) Table 1 analogue: 10 classes, 55,000 train / 5,000 validation (held out
of the 60,000 training images, RandomState(0) permutation) / 10,000 test, the Fig. 2 LeNet (10 outputs, 28×28×1,
leaky ReLU; chosen because it is the paper's own small CNN and trains in minutes on 2 cores), SGD lr 0.05 momentum
0.9, batch 128, 2 epochs, pixels in [0, 1]; λ ∈ {0 (ERM), 0.01, 0.03, 0.1} × 5 seeds = 20 restarts in one vmapped
program; λ chosen on the validation split by the rule in ``table.select`` (highest validation PGD accuracy at
ε = 5/255 among the λ whose validation clean accuracy is within 1 point of ERM's; none: the smallest λ); clean and
PGD test accuracy (ε = 5/255, the code's, and 0.05, the text's) on the first 2,000 test images, PGD accuracy vs ε.
(b) Fig. 2 analogue: pullover (2) vs coat (4) — the two Fashion classes ERM confuses most with each other, long
sleeves and similar silhouettes, so the classes are close and the margin is small, as airplane/horse is not but
the question "how far to the boundary" is the paper's — 12,000 train / 2,000 test, inputs in [-1, 1], the Fig. 2 net
(2 outputs), SGD lr 1e-3 momentum 0.9, **batch 8** and 10 epochs (the authors' batch 1 × 40 epochs is 480,000
sequential steps: hours on 2 CPU cores), ERM and SD (0.1·Σ_c ŷ_c²) from the same initialisation and batch order;
margins of the first 500 test images by attacks.minimal_margin (L∞, 40 PGD steps, bisection to 1e-3 in the [-1, 1]
scale, the authors' units).

Expected (paper, CIFAR): SD's PGD accuracy above ERM's at equal clean accuracy (Table 1: 42.3 → 69.7, 30.1 → 67.7,
14.3 → 24.9 %), SD's margin CDF to the right of ERM's.
Measured here (default, 2026-11-26, 5 seeds, mean ± std %, the LeNet's banded-matmul convolutions): ERM train
87.3 ± 0.6, clean test 86.0 ± 0.8, PGD ε=5/255 72.5 ± 1.0, PGD ε=0.05 42.2 ± 3.9; SD (λ = 0.03 selected) 88.3 ± 0.6,
87.0 ± 0.7, 74.2 ± 2.1, 46.5 ± 3.9 (gains within about one std). Fig. 2 analogue: test accuracy ERM 92.8 %, SD 93.2 %;
median margin ([-1, 1] units) ERM 0.0352, SD 0.0410 (500 test images). Wall time 1,045 s with the cores shared with
the slow test suite. Before the convolutions were rewritten (im2col matmuls, equal to float32 rounding): ERM 87.6 ±
0.4, 86.4 ± 0.6, 72.7 ± 1.8, 41.7 ± 6.1; SD (λ = 0.1) 88.5 ± 0.8, 87.2 ± 0.7, 74.1 ± 2.3, 46.1 ± 5.4; margins 0.0342 /
0.0410; 769 s on 2 idle cores: rounding differences of 1e-7 grow through thousands of SGD steps into other networks of the
same quality, and moved the validation choice of λ (0.1 vs 0.03, validation PGD 0.7378 vs 0.7402).
Budget: the default run is sized for < 30 min on 2 idle CPU cores (about 2.2 M training images over 20 restarts,
0.2 M PGD attacks of 10 steps, 1,000 minimal-margin searches of 11 × 40 steps).
"""

import ml_collections

VARIANTS = ("small", "cifar2", "cifar10", "cifar100", "cifar2_small", "cifar10_small", "cifar100_small")


def _net(**kw):
    base = dict(
        name="lenet",  # "lenet" (the Fig. 2 LeNet), "vgg" (VGG-16-BN), "preact" (PreAct-ResNet): models.build names
        width=1.0,  # VGG channel multiplier (1.0 = the paper's)
        depth=110,  # PreAct-ResNet depth (110 = the paper's CIFAR-100 net)
        base_channels=16,  # PreAct-ResNet base width (upstream default)
        input_norm="",  # "cifar10": (x − mean)/std inside the net (the Table 1 code); the attack works on pixels
    )
    base.update(kw)
    return ml_collections.ConfigDict(base)


def get_config(arg=None):
    if arg not in (None, *VARIANTS):
        raise ValueError(f"unknown variant {arg!r}; choose from {', '.join(VARIANTS)}")
    cfg = ml_collections.ConfigDict()
    cfg.seed = 0  # root of the JAX keys (seed s of every method uses key fold_in(PRNGKey(seed), s))
    cfg.checkpoint_every_s = (
        60.0  # seconds between checkpoints of a training program (--resume continues there)
    )
    cfg.data = ml_collections.ConfigDict()
    cfg.data.dataset = "fashion-mnist"  # "fashion-mnist", "cifar2", "cifar10", "cifar100"
    cfg.data.dir = ""  # "" = GS_DATA_DIR, else Debian's /usr/share/datasets/fashion-mnist (CIFAR: required)
    cfg.data.verify = True  # checksums of the official files (False for generated test files)
    cfg.data.max_train = 0  # > 0 keeps the first max_train training images (quick looks, tests)
    cfg.data.max_test = 0  # > 0 keeps the first max_test test images

    # the methods of the Table 1 part: names of the registry (gs_jax.algorithms); a tuple value is a grid
    cfg.methods = ml_collections.ConfigDict()
    cfg.methods.enabled = ("erm", "sd", "sd_val")  # erm: the reference row (the λ selection compares with it)
    cfg.methods.sd = ml_collections.ConfigDict()
    cfg.methods.sd.lam = (
        0.01  # the paper's fixed λ (λ · mean ŷ², the Table 1 code's form; run_SD.sh CIFAR-10: 0.01)
    )
    cfg.methods.sd_val = (
        ml_collections.ConfigDict()
    )  # SD with λ chosen on the validation split (table.select)
    cfg.methods.sd_val.method = "sd"
    cfg.methods.sd_val.lam = (0.01, 0.03, 0.1, 0.3)  # candidates around the paper's 0.01 (× ~3 steps)
    cfg.methods.logit_adjust = ml_collections.ConfigDict()
    cfg.methods.logit_adjust.tau = 1.0  # Menon et al. 2021's τ = 1
    cfg.methods.jtt = ml_collections.ConfigDict()
    cfg.methods.jtt.lambda_up = 20.0  # JTT λ_up (the registry default; SPEC §5c: 50 on CelebA)
    cfg.methods.jtt.identify_epochs = 1  # JTT's T: epochs of the identification ERM (Liu et al. 2021, CelebA)

    # (a) Table 1 analogue
    cfg.table = ml_collections.ConfigDict()
    cfg.table.enabled = True
    cfg.table.classes = ()  # () = all classes; two class ids = that pair relabelled 0/1 (CIFAR-2: (0, 7))
    cfg.table.pixel_range = (0.0, 1.0)  # the net's input scale (the attack's ε is in [0, 1] pixel units)
    cfg.table.n_val = 5000  # validation images held out of the training set (RandomState(0) permutation)
    # > 0: train on the first n images left after validation — a subset ERM fits (≥ 99 %) in the time budget
    cfg.table.n_train = 2000
    cfg.table.net = _net(name="lenet", input_norm="fashion-mnist")  # normalised inside, as the Table 1 nets
    cfg.table.restarts = 3  # seeds per method setting (the paper: 10 runs; the issue: ≥ 3)
    cfg.table.select = (
        "val_pgd_within_1pt"  # or "fixed": a grid's first setting (the paper: one λ, no validation)
    )
    cfg.table.select_tolerance = 0.01  # clean validation accuracy may be at most 1 point below ERM's
    cfg.table.epochs = 60  # ERM fits the subset (≥ table.saturation) by about epoch 44, see the docstring
    cfg.table.batch_size = 128  # the Table 1 code's batch
    cfg.table.lr = (
        0.05  # the code's 0.1 made ERM's LeNet (no BatchNorm) unstable: 96.9 % train after 60 epochs
    )
    cfg.table.momentum = 0.9
    cfg.table.nesterov = True
    cfg.table.weight_decay = (
        0.0  # torch-coupled (added to the gradient before momentum); the code: 1e-4 on CIFAR
    )
    cfg.table.milestones = (30, 45)  # lr × 0.1 at 50 % and 75 % of the epochs, as the code's 80, 120 of 160
    cfg.table.saturation = 0.99  # the regime the claim is about: ERM's training accuracy at least this
    cfg.table.augment = False  # random crop (pad 4) + horizontal flip, on the device
    cfg.table.n_train_eval = 10000  # training accuracy on the first n training images
    cfg.table.n_val_pgd = 1000  # validation images attacked for the λ selection
    cfg.table.n_test_pgd = (
        2000  # test images attacked (first n; 0 = all; clean accuracy uses the whole test set)
    )
    cfg.table.eval_chunk = 250  # images per evaluation chunk (memory)
    cfg.table.eval_every_epochs = (
        0  # > 0: validation clean accuracy to metrics.jsonl every k epochs (0: none)
    )

    # the attack (Table 1): torchattacks.PGD(eps=5/255, alpha=0.5/255, steps=10), random start (SPEC §5.1)
    cfg.attack = ml_collections.ConfigDict()
    cfg.attack.eps = 5 / 255  # the default ε (the authors' code); in [0, 1] pixel units
    cfg.attack.eps_text = 0.05  # the paper's text, "PGD = 0.05"
    cfg.attack.step_frac = 0.1  # α = ε/10 (0.5/255 at ε = 5/255)
    cfg.attack.steps = 10
    cfg.attack.curve = (1 / 255, 2 / 255, 3 / 255, 8 / 255)  # more ε for the curve (with 0, eps, eps_text)
    # "correct": PGD columns and curve through the whole net; "authors": table_1/main.py's de-normalise → attack the
    # net without its normalisation (torchattacks' float32 CE gradient) → re-normalise. Both are always reported
    # side by side at attack.eps.
    cfg.attack.input_scale = "correct"

    # (b) Fig. 2 analogue: Figure_2/main.py's protocol (SPEC §5.1, §5c)
    cfg.fig2 = ml_collections.ConfigDict()
    cfg.fig2.enabled = True
    cfg.fig2.classes = (2, 4)  # Fashion pullover vs coat (CIFAR-2: airplane 0 vs horse 7, SPEC §5.1)
    cfg.fig2.pixel_range = (
        -1.0,
        1.0,
    )  # Normalize(0.5, 0.5): the authors' Fig. 2 scale; margins in these units
    cfg.fig2.seeds = (
        1,
        2,
        3,
    )  # Figure_2/main.py: seed 1; seeds 2, 3 for the spread. ERM and SD share each key
    cfg.fig2.epochs = 40  # Figure_2/main.py --epoch 40
    cfg.fig2.batch_size = 1  # Figure_2/main.py: train_loader batch_size=1
    cfg.fig2.lr = 1e-3  # SGD lr 1e-3, momentum 0.9, no weight decay (Figure_2/main.py)
    cfg.fig2.momentum = 0.9
    cfg.fig2.sd_coef = (
        0.1  # CE + 0.1 · Σ_c ŷ_c² (Figure_2 sd_coef); ERM: 0 (the same loss, as the authors run it)
    )
    cfg.fig2.n_points = 0  # test points whose margin is searched (0: all, the authors' 2,000)
    cfg.fig2.n_train_points = 2000  # training points searched (first n; the authors: all, see the docstring)
    cfg.fig2.margin_chunk = 1000  # points per margin-search program (memory)
    # restarts per block of the vmapped program (trainer.Layout.restart_block; 0: all at once): at batch 1 on 2 CPU
    # cores blocks of 2 cost 0.39 CPU ms per run-step, all 6 at once 0.57 (the 6 nets' parameters leave the cache)
    cfg.fig2.restart_block = 2
    cfg.fig2.eval_every_epochs = (
        0  # > 0: training/test accuracy of every restart to metrics.jsonl every k epochs
    )
    cfg.fig2.search = (
        ml_collections.ConfigDict()
    )  # foolbox 2.x PGD defaults with binary_search=True (SPEC §5c)
    cfg.fig2.search.eps0 = 0.3  # first ε (relative to the input range: × 2 on (−1, 1))
    cfg.fig2.search.growth = 1.5  # ε × 1.5 after a failed try
    cfg.fig2.search.grow_trials = 20  # at most 20 tries of the exponential search
    cfg.fig2.search.halvings = 20  # then 20 halvings of [0, ε]
    cfg.fig2.search.stepsize = 0.01  # step = 0.01/0.3 · ε (relative)
    cfg.fig2.search.steps = 40  # iterations per try (stops at the first misclassified iterate)

    if arg in ("small", "cifar2_small", "cifar10_small", "cifar100_small"):
        cfg.table.restarts = 2  # seconds-sized runs for tests
        cfg.methods.sd_val.lam = (0.01, 0.1)
        cfg.table.epochs = 1
        cfg.table.milestones = ()
        cfg.table.batch_size = 16
        cfg.table.n_val = 40
        cfg.table.n_train = 0
        cfg.table.n_train_eval = 64
        cfg.table.n_val_pgd = 32
        cfg.table.n_test_pgd = 32
        cfg.table.eval_chunk = 16
        cfg.attack.curve = (2 / 255,)
        cfg.attack.steps = 2
        cfg.fig2.seeds = (1,)
        cfg.fig2.epochs = 1
        cfg.fig2.batch_size = 8
        cfg.fig2.n_points = 8
        cfg.fig2.n_train_points = 8
        cfg.fig2.search.grow_trials = 3
        cfg.fig2.search.halvings = 3
        cfg.fig2.search.steps = 3
        cfg.data.max_train = 400
        cfg.data.max_test = 100
    if arg in ("cifar2", "cifar2_small"):
        # Table 1's CIFAR-2 row has no code (SPEC §5.1); we run the Fig. 2 protocol for both parts: airplane vs
        # horse, the Fig. 2 net, [-1, 1] inputs; λ = 0.01 (the paper's CIFAR-2 λ) in the Table 1 mean form
        cfg.data.dataset = "cifar2"
        cfg.table.classes = (0, 7)
        cfg.table.pixel_range = (-1.0, 1.0)
        cfg.table.n_val = 0
        cfg.table.n_train = 0
        cfg.table.net.input_norm = ""
        cfg.methods.enabled = ("erm", "sd")  # no validation split: the paper's fixed λ only
        cfg.table.select = "fixed"
        cfg.table.restarts = 10 if arg == "cifar2" else 2  # the paper: 10 runs
        cfg.table.lr = 1e-3  # Figure_2/main.py: SGD 1e-3 m 0.9, no Nesterov, no schedule
        cfg.table.nesterov = False
        cfg.table.milestones = ()
        cfg.fig2.classes = (0, 7)
        if arg == "cifar2":
            cfg.table.epochs = 40  # Figure_2/main.py: 40 epochs, batch 1
            cfg.table.batch_size = 1
    if arg in ("cifar10", "cifar100", "cifar10_small", "cifar100_small"):
        # Table 1 code (SPEC §5.1): SGD lr 0.1 momentum 0.9 Nesterov wd 1e-4, batch 128, 160 epochs, lr × 0.1 at
        # 80 and 120, random crop (pad 4) + flip, per-channel normalisation; no validation split, fixed λ
        ten = arg.startswith("cifar10") and not arg.startswith("cifar100")
        cfg.data.dataset = "cifar10" if ten else "cifar100"
        cfg.table.n_val = 0
        cfg.table.n_train = 0
        cfg.table.select = "fixed"
        cfg.methods.enabled = ("erm", "sd")  # no validation split: the paper's fixed λ only
        cfg.methods.sd.lam = (
            0.01 if ten else 0.05
        )  # run_SD.sh / main.py comments: 0.01 (CIFAR-10), 0.05 (CIFAR-100)
        cfg.table.net = _net(name="vgg" if ten else "preact", input_norm="cifar10")  # CIFAR-10 stats for both
        cfg.table.lr = 0.1
        cfg.table.momentum = 0.9
        cfg.table.nesterov = True
        cfg.table.weight_decay = 1e-4
        cfg.table.augment = True
        cfg.table.epochs = 160
        cfg.fig2.classes = (0, 7)  # the Fig. 2 part runs on CIFAR-2 from the same CIFAR-10 files
        cfg.fig2.enabled = ten
        if arg in ("cifar10", "cifar100"):
            cfg.table.restarts = 10  # "10 runs"
            cfg.table.epochs = 160
            cfg.table.batch_size = 128
            cfg.table.milestones = (80, 120)
            cfg.table.n_test_pgd = 10000  # the whole test set
            cfg.table.eval_every_epochs = 1  # learning curves of the long runs
        else:
            cfg.table.epochs = 1
            cfg.table.net.width = 0.125  # an 8-channel VGG / depth-8 PreAct-ResNet: seconds on a CPU
            cfg.table.net.depth = 8
            cfg.table.net.base_channels = 4
            cfg.table.milestones = (1,)
    return cfg
