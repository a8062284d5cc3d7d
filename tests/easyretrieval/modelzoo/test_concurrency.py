"""Exactly one download per node: 4 processes on one cache, and two torchrun 'nodes' with a cache each."""
import hashlib
import multiprocessing
import os
import socket
import subprocess
import sys

from local_servers import resolve_in_subprocess

PATH = "/release/model_large.pth"
HERE = os.path.dirname(os.path.abspath(__file__))


def test_four_processes_download_once(http_server, cache_dir, make_payload):
    data = make_payload(2_000_000)
    url = http_server.add(PATH, data)
    http_server.inject(PATH, "slow")  # ~0.6 s of body: the other three arrive while it streams
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=resolve_in_subprocess, args=(url, cache_dir, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert {r[1] for r in results} == {hashlib.sha256(data).hexdigest()}
    assert len({r[0] for r in results}) == 1
    assert http_server.gets(PATH) == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_without_shared_filesystem_download_once_each(http_server, tmp_path, make_payload):
    data = make_payload(1_000_000)
    url = http_server.add(PATH, data)
    http_server.inject(PATH, "slow", "slow")
    port = _free_port()
    nodes = []
    for node_rank in (0, 1):
        env = dict(os.environ, EASYRETRIEVAL_CACHE=str(tmp_path / f"node{node_rank}"), OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "2",
               "--node_rank", str(node_rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
               os.path.join(HERE, "resolve_worker.py"), url]
        nodes.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [node.communicate(timeout=120)[0] for node in nodes]
    report = "\n".join(f"--- node {i} output:\n{out}" for i, out in enumerate(outputs))
    assert [node.returncode for node in nodes] == [0, 0], report
    lines = [line for out in outputs for line in out.splitlines() if line.startswith("RESOLVED")]
    assert len(lines) == 4, report
    assert {line.split()[3] for line in lines} == {hashlib.sha256(data).hexdigest()}
    for node_rank in (0, 1):  # each node's ranks read the file from that node's own cache
        assert all(str(tmp_path / f"node{node_rank}") in line for line in lines if f"node={node_rank}" in line)
    assert http_server.gets(PATH) == 2 and http_server.full_gets(PATH) == 2
