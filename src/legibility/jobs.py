"""What every rule script does first: log to the rule's log file."""

import logging
import warnings


def log_to(path) -> None:
    logging.basicConfig(
        filename=path, level=logging.INFO, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )  # fmt: skip
    logging.captureWarnings(True)
    warnings.simplefilter("default")
