# The performance table and the grid heatmap over all models.


rule performance:
    input:
        expand("results/models/{model}/metrics.json", model=MODELS),
    output:
        table="results/performance.tsv",
        figure=report(
            "results/performance_grid.png",
            caption="../report/performance_grid.rst",
            category="Performance",
        ),
    log:
        "logs/performance.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/performance.py"
