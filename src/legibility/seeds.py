"""Seeds derived from the config seed and the item they are for (subject, copy, model...)."""

import hashlib

import numpy as np


def derive_seed(*items) -> int:
    """A 63-bit seed that depends only on `items`, stable across runs and platforms."""
    digest = hashlib.sha256("\x1f".join(map(str, items)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def rng(*items) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*items))


def unit_hash(*items) -> float:
    """A number in [0, 1) that depends only on `items`."""
    return derive_seed(*items) / 2**63
