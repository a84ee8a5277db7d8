"""Worst-group accuracy (Section 4.3, Table 3): ERM, SD (per-class λ_c, γ_c), Group DRO, JTT and DFR.

Command:   make worst-group                                     (MNIST–Fashion dominoes, here on 2 CPU cores)
           make worst-group ARGS="--config configs/worst_group.py:celeba --config.data.dir=DIR"   (CelebA; a GPU)
Variants:  small (seconds; tests), celeba (the paper's protocol), celeba_small (a tiny ResNet on a generated
           CelebA-format directory; tests).

Default (no CelebA here): MNIST–Fashion-MNIST dominoes (``gs_jax.data.dominoes``): an MNIST 0/1 digit above a
Fashion-MNIST coat (y = 0) or dress (y = 1); the digit agrees with the label with probability ρ = 0.95 in training
and 0.5 in validation and test, group = 2·y + digit; 10,800 / 1,200 / 2,000 images. Net: the paper's Fig. 2 CNN
(``models.LeNetFig2``, one logit; 56×28 inputs). ONE optimiser for every method (Adam lr 1e-3, batch 128,
``train.epochs`` epochs) so that the methods differ only in their objective; 5 seeds (init and minibatch order per
seed, the same for every method). Hyper-parameter grids (every candidate × 5 seeds is trained):
  SD         λ ∈ {0.1, 1} (both classes) × γ ∈ {(0, 0), (−2.5, 2.5)}: λ_1·mean_{y=1}(ŷ−γ_1)² + λ_0·mean_{y=0}(ŷ−γ_0)²,
             no ½ (the authors' ``spw3`` form, whose CelebA values are λ = 0.1, γ = (0.44, 2.5));
  Group DRO  η_q ∈ {0.01 (Sagawa et al.'s CelebA value), 0.1}, C = 0;
  JTT        T = 1 epoch (Liu et al.'s CelebA T), λ_up ∈ {5, 20};
  DFR        l2 ∈ {1e-3, 1e-2, 1e-1, 1}, 10 balanced refits (on the final ERM nets).
Selection rule (documented in ``gs_jax.experiments.worst_group``): per seed the epoch with the best validation
worst-group accuracy, per method the candidate with the best mean of it; the same with validation average
accuracy is reported too.

Expected (paper, CelebA, test average / worst-group %): ERM 94.61 / 40.35, SD 91.64 / 83.24, Group DRO 91.76 / 87.78.
Measured here (default, 2026-11-26, 5 seeds, mean ± std %, val-worst selection, the LeNet's banded-matmul
convolutions): ERM 91.1 ± 0.6 / 78.8 ± 1.9, SD (λ = 1.0, γ = 0 selected) 91.0 ± 0.9 / 77.6 ± 2.0, Group DRO
(η = 0.01) 94.9 ± 0.6 / 91.6 ± 1.2, JTT (λ_up = 20) 93.5 ± 0.9 / 86.5 ± 3.5, DFR 95.6 ± 0.3 / 93.7 ± 1.0. The
dominoes shortcut costs ERM 20 points on its worst group (dresses under a 0), the group-aware methods recover it,
but SD does not (val-average selection: SD λ = 0.1, 91.4 / 81.2 vs ERM 91.3 / 79.0). 22.6 min with the cores
shared with the slow test suite. With the earlier im2col convolutions (equal to float32 rounding; the rounding
differences grow through training into other networks of the same quality): ERM 91.2 / 79.9, SD (λ = 0.1)
91.5 / 78.7, Group DRO 95.3 / 93.3, JTT 93.6 / 86.9, DFR 95.5 / 94.0; 18.2 min on 2 idle CPU cores (about 95 % of
it the 45-restart training program, ~2.4 s per restart-epoch).
"""

import ml_collections

VARIANTS = ("small", "calibrate", "celeba_layout", "celeba", "celeba_small")

# ERM's test accuracy against ρ on the symmetric dominoes, and on the celeba layout (ρ None), measured by
# `make worst-group-calibrate` (run calib1, 2026-12-06; 5 seeds, epochs chosen by val_worst, means over seeds):
# (ρ, worst-group, average, g0, g1, g2, g3). The paper's regime (ERM worst group 40–55 %) holds at ρ = 0.995 only.
CALIBRATION = (
    (0.95, 0.7948, 0.9085, 0.9966, 0.8501, 0.8008, 0.9940),
    (0.98, 0.7108, 0.8715, 0.9996, 0.7904, 0.7108, 0.9960),
    (0.983, 0.7130, 0.8665, 0.9975, 0.7702, 0.7139, 0.9960),
    (0.99, 0.6124, 0.8311, 0.9987, 0.7342, 0.6124, 0.9928),
    (0.995, 0.5226, 0.7777, 0.9996, 0.5644, 0.5697, 0.9988),
    (1.0, 0.0094, 0.4997, 1.0000, 0.0119, 0.0386, 0.9976),
    (None, 0.7884, 0.9192, 0.9720, 0.9944, 0.9220, 0.7884),
)
CALIBRATION_RUN = "runs/worst_group_calibrate/calib1"


def get_config(arg=None):
    if arg not in (None, *VARIANTS):
        raise ValueError(f"unknown variant {arg!r}; choose from {', '.join(VARIANTS)}")
    cfg = ml_collections.ConfigDict()
    cfg.variant = arg or "default"
    cfg.seed = 0  # root of the JAX keys: seed s uses fold_in(PRNGKey(seed), s) for every method
    cfg.seeds = 5  # the authors' table_2.sh runs 5 seeds per method (SPEC §4.4)

    cfg.data = ml_collections.ConfigDict()
    cfg.data.dataset = "dominoes"  # "dominoes" or "celeba" (gs_jax.data.groups)
    cfg.data.dir = (
        ""  # dominoes: Fashion-MNIST IDX dir ("" = Debian's); celeba: the CelebA directory (required)
    )
    cfg.data.verify = True  # Fashion-MNIST checksums (False for generated test files)
    # dominoes layout: "symmetric" = P(digit = label) = rho in both classes; "celeba" = CelebA's training group shares
    # (SPEC §5c), one minority group inside the minority class, validation and test group-balanced — not starved
    # (ERM's worst group 78.8 %, CALIBRATION): the variant celeba_layout
    cfg.data.layout = "symmetric"
    cfg.data.shares = (
        71629,
        66874,
        22880,
        1387,
    )  # celeba layout: CelebA's training counts per group (SPEC §4.1)
    # symmetric layout: P(digit = label) in training (0.5 in validation and test); 0.995: ERM's worst group 52.3 %,
    # the one ρ of the calibration in the paper's regime (CALIBRATION)
    cfg.data.rho = 0.995
    cfg.data.val_frac = (
        0.1  # dominoes: share of the Fashion training items (and digits) held out for validation
    )
    cfg.data.pair = (4, 3)  # dominoes: Fashion classes (y = 0, y = 1): coat vs dress (gs_jax.data.dominoes)
    cfg.data.seed = 0  # dominoes: the data set's own seed (the same data for every method and seed)
    cfg.data.target = "Blond_Hair"  # celeba (SPEC §4.1)
    cfg.data.confounder = "Male"  # celeba (SPEC §4.1)
    cfg.data.image_size = 224  # celeba: CenterCrop 178 → resize (SPEC §4.1)
    cfg.data.cache_dir = ""  # celeba: decoded-image cache ("" = <dir>/cache)
    cfg.data.max_train = 0  # > 0 keeps the first n training examples (quick looks, tests)
    cfg.data.max_eval = 0  # > 0 keeps the first n validation and test examples

    cfg.net = ml_collections.ConfigDict()
    cfg.net.name = "lenet"  # "lenet" (the paper's Fig. 2 CNN, one logit) or "resnet" (models.ResNet)
    cfg.net.stage_sizes = (3, 4, 6, 3)  # resnet: (3, 4, 6, 3) with width 64 = ResNet-50 (SPEC §4.2)
    cfg.net.width = 64
    cfg.net.pretrained = ""  # resnet: an .npz of ImageNet weights (models.read_state_dict); "" = random

    cfg.train = ml_collections.ConfigDict()  # every method's schedule unless cfg.methods.<m> overrides it
    cfg.train.optimizer = (
        "adam"  # "adam" (torch defaults) or "sgd"; one optimiser so methods differ only in loss
    )
    cfg.train.lr = 1e-3  # the Fig. 2 CNN's Adam rate (this project's choice for the dominoes)
    cfg.train.momentum = 0.9  # sgd only
    cfg.train.weight_decay = 0.0  # torch-coupled
    cfg.train.batch_size = 128  # the authors' CelebA batch (SPEC §4.4)
    cfg.train.epochs = 8  # ERM fits the dominoes' training set within it (this project's measurement)
    # "epochs": shuffled epochs as a torch DataLoader, rows that sample by weight (Group DRO's balanced groups,
    # JTT's up-weighted errors) drawing with replacement as a WeightedRandomSampler; "with_replacement": every batch
    # drawn with replacement (the pre-platform benchmark)
    cfg.train.sampler = "epochs"
    cfg.checkpoint_every_s = 60.0  # training checkpoints at most this often (and at the end of each program)

    cfg.eval = ml_collections.ConfigDict()
    cfg.eval.chunk = 400  # images per evaluation chunk (memory)

    # ρ calibration (gs_jax.experiments.worst_group_analysis.calibrate): ERM on the symmetric dominoes at each ρ
    cfg.calibration = ml_collections.ConfigDict()
    cfg.calibration.rhos = (0.95, 0.98, 0.983, 0.99, 0.995, 1.0)  # the grid; 1.0 as Shah et al. 2020
    cfg.calibration.celeba_layout = True  # also ERM on the celeba layout, one more row
    cfg.calibration.run = False  # True: train it in this run; False: report the recorded table (CALIBRATION)
    cfg.calibration.only = False  # True: the calibration alone (make worst-group-calibrate)
    cfg.calibration.measured = CALIBRATION
    cfg.calibration.measured_in = CALIBRATION_RUN
    # the monitor's responses to the digit and item features (worst_group_analysis.responses; lenet only)
    cfg.responses = ml_collections.ConfigDict()
    cfg.responses.enabled = True
    cfg.responses.per_group = 75  # probe images per group (4 × 75 = 300, "a few hundred")
    cfg.responses.k = 10  # top-k features of YΦ₀ computed

    def schedule(**kw):
        base = dict(
            optimizer=None, lr=None, momentum=None, weight_decay=None, epochs=None
        )  # None = cfg.train
        base.update(kw)
        return base

    # rows of methods.enabled: a registry name (gs_jax.algorithms) or a row whose block names its `method`; a key
    # whose value nests one level deeper than the registry default is a grid axis (algorithms.grid)
    cfg.methods = ml_collections.ConfigDict()
    cfg.methods.enabled = ("erm", "sd", "sd_controls", "sd_paper", "logit_adjust", "erm_threshold", "group_dro",
                           "group_dro_uniform", "jtt", "dfr", "dfr_l2")  # fmt: skip
    cfg.methods.erm = ml_collections.ConfigDict(schedule())
    # SD in the authors' CelebA form (spw3, no ½, per-class means): Σ_c λ_c·mean_{y=c}(ŷ − γ_c)², with the authors'
    # γ by role: 2.5 (their blond, the minority class) for y = 1, 0.44 (their dark hair) for y = 0 (table_2.sh,
    # SPEC §4.3) — a shift of the logit toward y = 1 (dress), the minority class of the celeba layout; the symmetric
    # dominoes have no minority class, and the shift favours the dresses' minority group (g2) over the coats' (g1).
    # λ around the authors' 0.1.
    cfg.methods.sd = ml_collections.ConfigDict(
        schedule(method="sd_spw3", lam=((0.03, 0.03), (0.1, 0.1), (0.3, 0.3)), gamma=(0.44, 2.5))
    )
    # the controls at the authors' λ: a symmetric γ (margins equalised, no shift) and γ = 0 (Eq. 17 per class)
    cfg.methods.sd_controls = ml_collections.ConfigDict(
        schedule(method="sd_spw3", lam=(0.1, 0.1), gamma=((-2.5, 2.5), (0.0, 0.0)))
    )
    # SD in the paper's form (§4.4 with Eq. 17: Σ_c λ_c/2·‖ŷ_c − γ_c‖² / n, per-class λ), authors' γ: λ_c = 2·0.1/π_c
    # with the training class shares π_c = 0.5 makes each class's term spw3's at λ = 0.1 (in expectation over batches)
    cfg.methods.sd_paper = ml_collections.ConfigDict(
        schedule(method="sd_class", lam=(0.4, 0.4), gamma=(0.44, 2.5))
    )
    # logit adjustment (Menon et al. 2021), class prior, τ = 1 (their default): a class shift learnt in training, no
    # group labels (balanced classes: log π₁/π₀ ≈ 0 on the symmetric dominoes, so it is ERM there)
    cfg.methods.logit_adjust = ml_collections.ConfigDict(schedule(tau=1.0, prior="class"))
    # ERM's final logit with its threshold moved, tuned on validation (posthoc.threshold_shift): the class-shift
    # control of SD's γ
    cfg.methods.erm_threshold = ml_collections.ConfigDict(dict(method="threshold", source="erm"))
    # Group DRO (Sagawa et al. 2020): the reference runs sample group-balanced (--reweight_groups, SPEC §5c);
    # η_q = 0.01 (their CelebA value) and 0.1; C = 0
    cfg.methods.group_dro = ml_collections.ConfigDict(schedule(eta=(0.01, 0.1), adj=0.0, reweight=1.0))
    cfg.methods.group_dro_uniform = ml_collections.ConfigDict(
        schedule(method="group_dro", eta=0.01, adj=0.0, reweight=0.0)
    )  # the variant with uniform minibatches
    # JTT (Liu et al. 2021): T = 1 epoch (their CelebA T), λ_up up to their CelebA 50 (SPEC §5b, §5c)
    cfg.methods.jtt = ml_collections.ConfigDict(schedule(identify_epochs=1, lambda_up=(5.0, 20.0, 50.0)))
    # DFR as the reference (dfr_evaluate_spurious.py, SPEC §5c): L1 logistic regression (liblinear), C from its
    # C_OPTIONS tuned on half of validation, scaler fit on the training features, 20 balanced refits averaged
    cfg.methods.dfr = ml_collections.ConfigDict(
        dict(penalty="l1", c=(1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01), n_refits=20, source="erm")
    )
    # this project's first DFR: L2 (Newton), standardised on validation, 10 refits
    cfg.methods.dfr_l2 = ml_collections.ConfigDict(
        dict(method="dfr", penalty="l2", l2=(1e-3, 1e-2, 1e-1, 1.0), n_refits=10, source="erm")
    )

    if (
        arg == "calibrate"
    ):  # make worst-group-calibrate: ERM alone at every ρ (6 × 5 restarts) + the celeba layout
        cfg.calibration.run = True
        cfg.calibration.only = True
        cfg.methods.enabled = ("erm",)
    if arg == "celeba_layout":  # the celeba layout with the wider grid it was first run with (run main1)
        cfg.data.layout = "celeba"
        cfg.methods.enabled = ("erm", "sd", "sd_paper", "logit_adjust", "erm_threshold", "group_dro",
                               "group_dro_uniform", "jtt", "dfr", "dfr_l2")  # fmt: skip
        cfg.methods.sd.gamma = ((0.44, 2.5), (-2.5, 2.5), (0.0, 0.0))  # the controls inside the sd row
        # λ_c = 2·0.1 for both, and 2·0.1/π_c with the celeba layout's class shares π = (0.851, 0.149)
        cfg.methods.sd_paper.lam = ((0.2, 0.2), (0.235, 1.342))
        cfg.methods.logit_adjust = ml_collections.ConfigDict(schedule(tau=(0.5, 1.0, 2.0), prior="class"))
        cfg.methods.group_dro_uniform = ml_collections.ConfigDict(
            schedule(method="group_dro", eta=(0.01, 0.1), adj=0.0, reweight=0.0)
        )
    if arg == "small":  # tests: seconds
        cfg.data.rho = 0.95
        cfg.seeds = 2
        cfg.data.max_train = 256
        cfg.data.max_eval = 100
        cfg.train.batch_size = 32
        cfg.train.epochs = 2
        cfg.eval.chunk = 100
        cfg.calibration.rhos = (0.95, 1.0)
        cfg.responses.per_group = 5
        cfg.responses.k = 4
        cfg.methods.enabled = ("erm", "sd", "sd_paper", "logit_adjust", "erm_threshold", "group_dro",
                               "group_dro_uniform", "jtt", "dfr", "dfr_l2")  # fmt: skip
        cfg.methods.sd.lam = ((0.1, 0.1),)
        cfg.methods.sd.gamma = ((0.44, 2.5), (0.0, 0.0))
        cfg.methods.group_dro.eta = (0.1,)
        cfg.methods.group_dro_uniform.eta = 0.1
        cfg.methods.jtt.lambda_up = (5.0,)
        cfg.methods.dfr.c = (1.0, 0.1)
        cfg.methods.dfr.n_refits = 2
        cfg.methods.dfr_l2.l2 = (1e-2, 1.0)
        cfg.methods.dfr_l2.n_refits = 2
        cfg.checkpoint_every_s = 0.0  # a checkpoint after every epoch (the resume test)
    if arg in ("celeba", "celeba_small"):
        # the paper's protocol (SPEC §4): ImageNet ResNet-50, one logit, all layers fine-tuned, batch 128, 5 seeds
        cfg.data.dataset = "celeba"
        cfg.net.name = "resnet"
        cfg.train.batch_size = 128
        cfg.train.sampler = "epochs"
        cfg.eval.chunk = 256
        cfg.responses.enabled = False
        cfg.methods.enabled = ("erm", "sd", "group_dro", "jtt", "dfr")
        # ERM (table_2.sh): SGD momentum 0.9, lr 1e-5, no weight decay, 3 epochs
        cfg.methods.erm = ml_collections.ConfigDict(
            schedule(optimizer="sgd", lr=1e-5, weight_decay=0.0, epochs=3)
        )
        # SD (table_2.sh: --adam --sp 0.1 --mode spw3): Adam lr 1e-5, λ = 0.1 both classes, γ = (0.44, 2.5)
        cfg.methods.sd = ml_collections.ConfigDict(schedule(method="sd_spw3", optimizer="adam", lr=1e-5,
                                                            weight_decay=0.0, epochs=3, lam=(0.1, 0.1),
                                                            gamma=(0.44, 2.5)))  # fmt: skip
        # Group DRO (Sagawa et al., ICLR 2020, CelebA, strong ℓ2): SGD m 0.9, lr 1e-5, wd 0.1, 50 epochs, η_q = 0.01,
        # group-balanced sampling; the group adjustment C is tuned in the paper (here C = 0; add a grid)
        cfg.methods.group_dro = ml_collections.ConfigDict(schedule(optimizer="sgd", lr=1e-5, weight_decay=0.1,
                                                                   epochs=50, eta=0.01, adj=0.0, reweight=1.0))  # fmt: skip
        # JTT (Liu et al., ICML 2021, CelebA): SGD m 0.9, lr 1e-5, wd 0.1, T = 1, λ_up = 50, 50 epochs
        cfg.methods.jtt = ml_collections.ConfigDict(schedule(optimizer="sgd", lr=1e-5, weight_decay=0.1, epochs=50,
                                                             identify_epochs=1, lambda_up=50.0))  # fmt: skip
        # DFR: the reference's CelebA C grid (dfr_evaluate_spurious.py, commented CelebA block)
        cfg.methods.dfr.c = (3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003)
    if arg == "celeba_small":
        cfg.seeds = 2
        cfg.data.image_size = 32
        cfg.net.stage_sizes = (1, 1, 1, 1)
        cfg.net.width = 4
        cfg.train.batch_size = 8
        cfg.eval.chunk = 16
        for m in ("erm", "sd", "group_dro", "jtt"):  # one schedule for all: one compiled program (seconds)
            cfg.methods[m].update(dict(optimizer="adam", lr=1e-3, weight_decay=0.0, epochs=1))
        cfg.methods.dfr.c = (1.0, 0.1)
        cfg.methods.dfr.n_refits = 2
    return cfg
