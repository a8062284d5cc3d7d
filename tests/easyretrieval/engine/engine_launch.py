"""Start the toy worker as one process, as 2 ranks under torchrun, or as 2 one-rank torchrun "nodes"."""
import os
import socket
import subprocess
import sys

import process_launch
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "toy_worker.py")
TIMEOUT_S = 180


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def run_toy(out, *args, nproc=2, check=True):
    """Run the worker; returns the CompletedProcess (check: fail the test with its output on error)."""
    if nproc == 1:
        cmd = [sys.executable, WORKER, str(out), *map(str, args)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", WORKER, str(out), *map(str, args)]
    proc = process_launch.run(cmd, TIMEOUT_S, env=_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"worker failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def run_toy_two_nodes(out, *args):
    """Two torchrun launchers (--nnodes 2 --nproc_per_node 1) on 127.0.0.1, as two machines would run."""
    port = free_port()
    procs = []
    for node_rank in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
               f"--node_rank={node_rank}", "--master_addr=127.0.0.1", f"--master_port={port}",
               WORKER, str(out), *map(str, args)]
        procs.append(process_launch.start(cmd, env=_env(), stderr=subprocess.STDOUT))
    try:
        results = [process_launch.finish(p, TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            process_launch.kill_tree(p.pid)
    for code, text, _ in results:
        if code != 0:
            raise AssertionError(f"node failed ({code}):\n{text[-6000:]}")


def load_result(out, rank=0):
    return torch.load(os.path.join(str(out), f"result_rank{rank}.pt"), weights_only=False)
