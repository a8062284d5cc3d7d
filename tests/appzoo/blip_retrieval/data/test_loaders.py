import os
import subprocess
import sys
import time
import uuid

import psutil
import pytest
import torch

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset, RetrievalTrainDataset
from appzoo.blip_retrieval.data.loaders import (ContiguousSliceSampler, ResumableDistributedSampler,
                                                create_eval_image_loader, create_train_loader)
from appzoo.blip_retrieval.data.transforms import create_transform
from easyretrieval.distributed import DistInfo
from easyretrieval.errors import UserError

from data_helpers import write_jpeg, write_json

T = create_transform(8, train=False)


@pytest.fixture
def many(tmp_path):
    """10 images with 2 captions each: a train file (official format) and an eval file."""
    root = str(tmp_path / "img")
    for i in range(10):
        write_jpeg(os.path.join(root, f"{i}.jpg"), (i * 25, 0, 0), size=(12, 12))
    train = write_json(str(tmp_path / "train.json"),
                       [{"image": f"{i}.jpg", "caption": f"c{i} {k}", "image_id": i} for i in range(10) for k in range(2)])
    test = write_json(str(tmp_path / "test.json"), [{"image": f"{i}.jpg", "caption": [f"c{i}"]} for i in range(10)])
    return root, train, test


def _break(root, i):
    path = os.path.join(root, f"{i}.jpg")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:40])
    return path


def test_train_sampler_partitions_ranks_and_reshuffles_per_epoch():
    data = list(range(20))
    s0, s1 = (ResumableDistributedSampler(data, 2, r, seed=5) for r in (0, 1))
    a, b = list(s0), list(s1)
    assert len(a) == len(b) == 10 and sorted(a + b) == data
    s0.set_epoch(1)
    assert list(s0) != a and sorted(list(s0) + list(ResumableDistributedSampler(data, 2, 1, seed=5))) != []


def test_set_start_index_resumes_the_same_order_once():
    data = list(range(20))
    s = ResumableDistributedSampler(data, 2, 1, seed=0)
    s.set_epoch(3)
    full = list(s)
    s.set_start_index(4)
    assert len(s) == 6 and list(s) == full[4:]
    assert list(s) == full  # only the next pass is shortened
    with pytest.raises(ValueError):
        s.set_start_index(11)


def test_train_loader_resume_skips_consumed_batches(many):
    root, train, _ = many
    ds = RetrievalTrainDataset(train, root, T)
    loader = create_train_loader(ds, 3, DistInfo(rank=0, world_size=2), num_workers=0, seed=1)
    loader.sampler.set_epoch(2)
    full = [b[2].tolist() for b in loader]
    assert len(full) == len(loader) == 3  # 10 samples on this rank, drop_last
    loader.sampler.set_epoch(2)
    loader.sampler.set_start_index(3)
    assert len(loader) == 2 and [b[2].tolist() for b in loader] == full[1:]
    images, captions, idx = next(iter(loader))
    assert images.shape == (3, 3, 8, 8) and len(captions) == 3 and idx.dtype == torch.int64


def _epoch_images(loader, epoch, start_batch=0):
    loader.sampler.set_epoch(epoch)
    loader.sampler.set_start_index(start_batch * loader.batch_size)
    loader.generator = torch.Generator().manual_seed(epoch)  # as the task does: the global RNG is not drawn
    return [images for images, _, _ in loader]


def test_seeded_augmentations_ignore_workers_and_resume(many):
    """With augment_seed, a sample's augmentation depends on (seed, epoch, rank, position) only."""
    root, train, _ = many
    ds = RetrievalTrainDataset(train, root, create_transform(8, train=True))
    dist = DistInfo(rank=1, world_size=2)
    make = lambda workers, seed=7: create_train_loader(ds, 3, dist, num_workers=workers, persistent_workers=False,
                                                       seed=1, augment_seed=seed)
    torch.manual_seed(0)
    expected_next = torch.rand(3)
    torch.manual_seed(0)
    single = _epoch_images(make(0), epoch=2)
    assert torch.equal(torch.rand(3), expected_next)  # the main process's generators are left as they were
    workers = _epoch_images(make(2), epoch=2)
    assert len(single) == 3 and all(torch.equal(a, b) for a, b in zip(single, workers))
    resumed = _epoch_images(make(2), epoch=2, start_batch=1)
    assert all(torch.equal(a, b) for a, b in zip(single[1:], resumed))
    other_epoch, other_seed = _epoch_images(make(0), epoch=3), _epoch_images(make(0, seed=8), epoch=2)
    assert not torch.equal(single[0], other_seed[0]) and not torch.equal(single[0], other_epoch[0])


def test_eval_slices_are_contiguous_complete_and_unpadded():
    parts = [list(ContiguousSliceSampler(10, r, 3)) for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert [list(ContiguousSliceSampler(2, r, 4)) for r in range(4)] == [[], [0], [], [1]]


def test_eval_loader_yields_images_and_indices_of_this_rank(many):
    root, _, test = many
    ds = RetrievalEvalDataset(test, root, T)
    seen = []
    for rank in range(3):
        loader = create_eval_image_loader(ds, 2, DistInfo(rank=rank, world_size=3), num_workers=0)
        for images, idx in loader:
            assert images.shape[1:] == (3, 8, 8) and images.shape[0] == len(idx)
            seen += idx.tolist()
    assert seen == list(range(10))


def test_skip_bad_images_counts_across_workers_and_continues(many):
    root, train, test = many
    _break(root, 3)
    os.remove(os.path.join(root, "7.jpg"))
    ds = RetrievalTrainDataset(train, root, T, skip_bad_images=True)
    loader = create_train_loader(ds, 4, DistInfo(), num_workers=2, persistent_workers=False, seed=0)
    batches = list(loader)
    assert len(batches) == 5 and all(len(b[1]) == 4 for b in batches)  # shapes kept: bad samples replaced
    assert loader.num_skipped == 4  # 2 captions each of images 3 and 7
    assert not any(c.startswith(("c3 ", "c7 ")) for b in batches for c in b[1])
    list(loader)
    assert loader.num_skipped == 8  # cumulative over epochs

    ev = RetrievalEvalDataset(test, root, T, skip_bad_images=True)
    eval_loader = create_eval_image_loader(ev, 4, DistInfo(), num_workers=2)
    idx = torch.cat([i for _, i in eval_loader]).tolist()
    assert idx == [0, 1, 2, 4, 5, 6, 8, 9] and eval_loader.num_skipped == 2


def _live_loader_workers():
    """Processes forked by this process's forkserver (its loader workers), zombies excluded."""
    workers = [w for server in psutil.Process().children() for w in server.children()]
    return [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]


def test_bad_image_in_a_worker_raises_a_one_line_user_error_with_the_path(many):
    root, _, test = many
    bad = _break(root, 5)
    ds = RetrievalEvalDataset(test, root, T)
    loader = create_eval_image_loader(ds, 4, DistInfo(), num_workers=2, persistent_workers=False)
    with pytest.raises(UserError) as e:
        list(loader)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"cannot read image '{bad}'")
    # The workers were stopped before the error left the loader (the traceback still holds the iterator): left
    # to the finalizer at exit, their queue threads printed tracebacks after the one-line message.
    assert _live_loader_workers() == []


KILLED_OWNER = """
import os, signal, sys
from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset
from appzoo.blip_retrieval.data.loaders import create_eval_image_loader
from appzoo.blip_retrieval.data.transforms import create_transform
from easyretrieval.distributed import DistInfo

if __name__ == "__main__":
    ds = RetrievalEvalDataset(sys.argv[1], sys.argv[2], create_transform(8, train=False))
    loader = create_eval_image_loader(ds, 2, DistInfo(), num_workers=2, persistent_workers=True)
    next(iter(loader))  # workers are up
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _processes_with(marker):
    """Pids whose environment holds `marker` (NAME=value): a process and everything it started."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the worker processes")
def test_forkserver_workers_exit_when_their_owner_is_killed(many, tmp_path):
    root, _, test = many
    token = uuid.uuid4().hex
    marker = f"EASYRETRIEVAL_TEST_MARKER={token}"
    env = dict(os.environ, EASYRETRIEVAL_TEST_MARKER=token)
    script = tmp_path / "owner.py"
    script.write_text(KILLED_OWNER)
    # output to files: orphans holding a pipe would keep subprocess.run waiting for its end
    with open(tmp_path / "owner.log", "w") as log:
        owner = subprocess.run([sys.executable, str(script), test, root], env=env, timeout=120,
                               stdout=log, stderr=subprocess.STDOUT)
    assert owner.returncode == -9, (tmp_path / "owner.log").read_text()
    deadline = time.time() + 20
    while _processes_with(marker) and time.time() < deadline:
        time.sleep(0.5)
    left = _processes_with(marker)
    for pid in left:  # do not leave them behind when the test fails
        os.kill(pid, 9)
    assert not left, "the forkserver and its loader workers outlived the killed owner"
