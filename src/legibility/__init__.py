"""legibility: which targets can be predicted from which brain-imaging inputs."""

__version__ = "0.1.0"

MODALITIES = ("t1", "flair", "dwi")  # structural images, in channel order
BOLD = "bold"
CONNECTIVITY = "connectivity"
MIND = "mind"  # structural similarity networks (Sebenius et al. 2023)
VECTORS = (CONNECTIVITY, MIND)  # inputs that are one vector per subject, from a shard index
IMAGING = (*MODALITIES, *VECTORS)  # what a model reads of the brain
BLOCKS = ("constitutional", "serology", "psychology", "disease")  # metadata blocks
CONFOUNDS = "confounds"  # the nuisance variables (config confounds): every target's comparator
