"""Start train_worker.py as one process or as 2 CPU ranks under torchrun; read its results."""
import os
import socket
import sys

import process_launch
import torch

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_worker.py")
TIMEOUT_S = 600


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(synthetic_dir):
    env = dict(os.environ, SYNTHETIC_DIR=synthetic_dir)
    env.setdefault("OMP_NUM_THREADS", "1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def run_worker(synthetic, out, *args, nproc=2, check=True):
    synthetic_dir, vocab = synthetic
    args = [*map(str, args), "--set", f"tokenizer={vocab}"]
    if nproc == 1:
        cmd = [sys.executable, WORKER, str(out), *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", WORKER, str(out), *args]
    proc = process_launch.run(cmd, TIMEOUT_S, env=env_for(synthetic_dir))
    if check and proc.returncode != 0:
        raise AssertionError(f"worker failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def load_result(out, rank=0):
    return torch.load(os.path.join(str(out), f"result_rank{rank}.pt"), weights_only=False)
