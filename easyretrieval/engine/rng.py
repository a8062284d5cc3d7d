"""Capture and restore every random-number generator a training step touches (per rank)."""
import contextlib
import random

import numpy as np
import torch


def capture_rng_state(cuda: bool = True) -> dict:
    """Python, numpy, torch CPU and (when `cuda` and present) every GPU generator's state."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if cuda and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (official BLIP seeds with seed + rank)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def derive_seed(*keys: int) -> int:
    """A 32-bit seed that depends only on `keys` (the same in every process and on every machine)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_cpu_rngs(seed: int):
    """Run a block with python, numpy and torch's CPU generator seeded, then put them back as they were
    (only the CPU generator: torch.manual_seed would also reset the GPU ones that dropout draws from)."""
    state = capture_rng_state(cuda=False)
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        restore_rng_state(state)
