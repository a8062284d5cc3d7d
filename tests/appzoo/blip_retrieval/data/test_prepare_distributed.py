"""prepare_data on two real CPU ranks (torchrun, gloo): local rank 0 generates, the other waits at the barrier;
the eval images are then split between the ranks without gaps or duplicates."""
import json
import os
import socket
import sys

import process_launch

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prepare_worker.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), WORKER, *args]
    proc = process_launch.run(cmd, 300, env=env)  # the launcher and both ranks, never leaving a rank behind
    return proc.returncode, proc.stderr


def test_two_ranks_share_one_generation_and_split_eval_images(tmp_path):
    syn, out = str(tmp_path / "syn"), str(tmp_path / "rank")
    code, stderr = _torchrun(syn, out)
    assert code == 0, stderr[-3000:]
    r0, r1 = (json.load(open(f"{out}{r}.json")) for r in (0, 1))
    assert r0["image_root"] == r1["image_root"] == os.path.join(syn, "v1_seed0", "images")
    assert r0["indices"] == list(range(50)) and r1["indices"] == list(range(50, 100))
    assert os.listdir(syn) == ["v1_seed0"]  # one complete dataset, no temporary folders left behind


def test_a_bad_annotation_fails_every_rank_with_the_same_line(tmp_path):
    from data_helpers import write_jpeg, write_json

    write_jpeg(str(tmp_path / "img" / "a.jpg"))
    write_json(str(tmp_path / "ann" / "test.json"), [{"image": "a.jpg", "caption": ["x"]},
                                                    {"image": "gone.jpg", "caption": ["y"]}])
    out = str(tmp_path / "rank")
    code, stderr = _torchrun(str(tmp_path / "syn"), out, str(tmp_path / "img"), str(tmp_path / "ann"))
    assert code != 0
    errors = [open(f"{out}{r}.err").read() for r in (0, 1)]
    assert errors[0] == errors[1] and "test.json[1]: image 'gone.jpg' not found" in errors[0]
