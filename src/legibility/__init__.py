"""legibility: which targets can be predicted from which brain-imaging inputs."""

__version__ = "0.1.0"

MODALITIES = ("t1", "flair", "dwi")  # structural images, in channel order
BOLD = "bold"
CONNECTIVITY = "connectivity"
BLOCKS = ("constitutional", "serology", "psychology", "disease")  # metadata blocks
