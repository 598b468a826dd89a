# The verdicts over all models: performance and legibility tables, the grid heatmap and one
# figure per target.


rule performance:
    input:
        metrics=expand("results/models/{model}/metrics.json", model=MODELS),
        predictions=expand("results/models/{model}/predictions.tsv", model=MODELS),
    output:
        table="results/performance.tsv",
        legibility="results/legibility.tsv",
        figure=report(
            "results/performance_grid.png",
            caption="../report/performance_grid.rst",
            category="Performance",
        ),
        targets=report(
            directory("results/targets"),
            patterns=["{target}.png"],
            caption="../report/target.rst",
            category="Performance",
            subcategory="Targets",
        ),
    params:
        statistics=config["statistics"],
        seed=config["seed"],
    log:
        "logs/performance.log",
    benchmark:
        "results/benchmarks/performance.tsv"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/performance.py"
