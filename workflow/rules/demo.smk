# The synthetic demo cohort: images, participants table and truth file, from nilearn's templates.


if config["demo"]["enabled"]:

    rule demo_cohort:
        output:
            participants=config["phenotypes"]["path"],
            truth=f"{config['demo']['root']}/truth.json",
            images=sorted(p for paths in IMAGES.values() for p in paths.values()),
        params:
            config={"seed": config["seed"], "demo": config["demo"]},
            images=IMAGES,
        threads: 8  # at most --cores locally
        log:
            "logs/demo_cohort.log",
        benchmark:
            "results/benchmarks/demo_cohort.tsv"
        conda:
            "../../envs/legibility.yaml"
        script:
            "../../scripts/demo_cohort.py"
