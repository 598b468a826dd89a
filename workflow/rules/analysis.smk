# The study's analyses of the grid, under results/analysis/: what each input adds (mixed-effects
# models per target domain), the network of targets, the cost of training, the cohort's mean
# images; and results/dashboard.html to explore it all. Each reads the finished tables only:
# changing analysis settings reruns these rules and nothing else.

ANALYSIS_FIGURES = {
    "What each input adds (mixed-effects models)": "analysis/domain_effects.png",
    "The target network": "analysis/target_network.png",
    "Training cost per input set": "analysis/training_cost.png",
    **({"Cohort mean images": "analysis/mean_images.png"} if RESOLUTIONS else {}),
}


rule domain_effects:
    input:
        "results/performance.tsv",
    output:
        table="results/analysis/domain_effects.tsv",
        figure=report("results/analysis/domain_effects.png", caption="../report/domain_effects.rst", category="Analyses"),
    params:
        variables=variables(TARGETS),
    log:
        "logs/analysis/domain_effects.log",
    benchmark:
        "results/benchmarks/analysis/domain_effects.tsv"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/domain_effects.py"


rule target_network:
    input:
        performance="results/performance.tsv",
        legibility="results/legibility.tsv",
        splits="results/splits.tsv",
        qc="results/qc.tsv",
        phenotypes=config["phenotypes"]["path"],
    output:
        table="results/analysis/target_network.tsv",
        mutual_information="results/analysis/mutual_information.tsv",
        figure=report("results/analysis/target_network.png", caption="../report/target_network.rst", category="Analyses"),
    params:
        phenotypes=PHENOTYPE_FILE,
        variables=variables(TARGETS),
        folds=FOLDS,
        n_folds=N_FOLDS,
        settings=config["analysis"],
        seed=config["seed"],
    log:
        "logs/analysis/target_network.log",
    benchmark:
        "results/benchmarks/analysis/target_network.tsv"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/target_network.py"


rule training_cost:
    input:
        performance="results/performance.tsv",
        metrics=expand("results/models/{model}/{fold}/metrics.json", model=MODELS, fold=FOLDS),
        benchmarks=expand("results/benchmarks/train/{model}/{fold}.tsv", model=MODELS, fold=FOLDS),
    output:
        table="results/analysis/training_cost.tsv",
        figure=report("results/analysis/training_cost.png", caption="../report/training_cost.rst", category="Analyses"),
    params:
        confidence=config["analysis"]["confidence"],
        seed=config["seed"],
    log:
        "logs/analysis/training_cost.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/training_cost.py"


rule mean_images:
    input:
        tables=per_shard("results/preprocessed/shard-{shard}.tsv"),
        arrays=per_shard("results/preprocessed/shard-{shard}_res-{res}.npy", res=min(RESOLUTIONS or [0])),
    output:
        images=directory("results/analysis/mean_images"),
        figure=report("results/analysis/mean_images.png", caption="../report/mean_images.rst", category="Analyses"),
    params:
        resolution=min(RESOLUTIONS or [0]),
        fov_mm=config["preprocess"]["fov_mm"],
    log:
        "logs/analysis/mean_images.log",
    benchmark:
        "results/benchmarks/analysis/mean_images.tsv"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/mean_images.py"


rule dashboard:
    input:
        performance="results/performance.tsv",
        legibility="results/legibility.tsv",
        metrics=expand("results/models/{model}/{fold}/metrics.json", model=MODELS, fold=FOLDS[:1]),
        figures=[f"results/{path}" for path in ANALYSIS_FIGURES.values()],
    output:
        "results/dashboard.html",
    params:
        figures=ANALYSIS_FIGURES,
    log:
        "logs/analysis/dashboard.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/dashboard.py"
