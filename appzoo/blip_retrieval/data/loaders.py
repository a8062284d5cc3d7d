"""DataLoaders: distributed, resumable training batches and per-rank contiguous slices of eval images.

Both loaders count images skipped under `skip_bad_images` in the main process (`loader.num_skipped`,
cumulative) whatever the number of workers, and turn a bad-image error raised in a worker back into the
one-line UserError of the dataset.
"""
import functools
import multiprocessing
import os
import threading
import time

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from torch.utils.data._utils.collate import default_collate

from easyretrieval.distributed import DistInfo
from easyretrieval.engine.rng import derive_seed, seeded_cpu_rngs
from easyretrieval.errors import UserError


class ResumableDistributedSampler(DistributedSampler):
    """DistributedSampler (official: shuffle=True, seed) that can start an epoch part-way.

    `set_start_index(i)` skips the first i samples of this rank's order in the next pass only (resume
    after i = consumed_batches * batch_size samples); `set_epoch(e)` reshuffles as DistributedSampler.
    With `augment_seed` it yields (index, seed of that sample's augmentation): the seed depends on
    (augment_seed, epoch, rank, position in the epoch) only, so augmentations do not depend on the number
    of loader workers and a run resumed mid-epoch draws the same ones as an uninterrupted run.
    """

    def __init__(self, dataset, num_replicas, rank, shuffle=True, seed=0, drop_last=False, augment_seed=None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start_index = 0
        self.augment_seed = augment_seed

    def set_start_index(self, index: int):
        if not 0 <= index <= self.num_samples:
            raise ValueError(f"start index {index} outside [0, {self.num_samples}]")
        self.start_index = index

    def __iter__(self):
        start, self.start_index = self.start_index, 0
        indices = list(super().__iter__())[start:]
        if self.augment_seed is None:
            return iter(indices)
        return iter([(index, derive_seed(self.augment_seed, self.epoch, self.rank, start + k))
                     for k, index in enumerate(indices)])

    def __len__(self):
        return self.num_samples - self.start_index


class ContiguousSliceSampler(Sampler):
    """Indices [rank * n // world, (rank + 1) * n // world): every image once, no padding duplicates."""

    def __init__(self, n: int, rank: int, world_size: int):
        self.start, self.end = rank * n // world_size, (rank + 1) * n // world_size

    def __iter__(self):
        return iter(range(self.start, self.end))

    def __len__(self):
        return self.end - self.start


class _SkipCounting(torch.utils.data.Dataset):
    """Wraps a dataset so that each item carries its skip count out of the worker process."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        if isinstance(key, tuple):  # (index, augmentation seed) from ResumableDistributedSampler
            index, seed = key
            with seeded_cpu_rngs(seed):
                return self.dataset.get_with_skips(index)
        return self.dataset.get_with_skips(key)


def _collate_counting(items):
    """[(sample or None, n_skipped)] -> (collated good samples or None, total skipped)."""
    samples = [s for s, _ in items if s is not None]
    skipped = sum(n for _, n in items)
    return (default_collate(samples) if samples else None), skipped


def _clean_worker_error(error: UserError) -> UserError:
    """torch re-raises a worker's UserError with the worker traceback in its message: keep the last line."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    prefix = "easyretrieval.errors.UserError: "
    for line in reversed(lines):
        if line.startswith(prefix):
            return UserError(line[len(prefix):])
    return UserError(lines[-1] if lines else str(error))


def _shutdown_workers(iterator):
    """Stop the workers of a multi-process iterator now, while this process runs normally."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


class CountingLoader(DataLoader):
    """A DataLoader over `_SkipCounting(dataset)` that yields plain batches and sums skips into num_skipped."""

    def __init__(self, dataset, **kwargs):
        super().__init__(_SkipCounting(dataset), collate_fn=_collate_counting, **kwargs)
        self.num_skipped = 0

    @property
    def base_dataset(self):
        return self.dataset.dataset

    def __iter__(self):
        iterator = super().__iter__()
        while True:
            try:
                batch, skipped = next(iterator)
            except StopIteration:
                return
            except BaseException as e:
                # A worker's error ends the run: stop the workers here, in the normal flow. Left to the
                # iterator's finalizer at interpreter exit, their queue threads print tracebacks of their own
                # (EBADF, "semaphore released too many times") after our one-line message.
                _shutdown_workers(iterator)
                if isinstance(e, UserError):
                    raise _clean_worker_error(e) from None
                raise
            self.num_skipped += skipped
            if batch is not None:
                yield batch


def _exit_when_gone(owner_pid, worker_id, poll_s=1.0):
    """worker_init_fn under forkserver: end this worker once the process that owns its loader is gone.

    A forkserver worker is the server's child, so torch's own orphan check (the parent changed) never
    fires, and the server lives as long as any worker holds its pipe: a rank killed with SIGKILL would
    leave both behind for ever, holding the launcher's output pipes open.
    """
    def watch():
        while True:
            time.sleep(poll_s)
            try:
                os.kill(owner_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # exists (owned by someone else): not ours to judge
                pass

    threading.Thread(target=watch, name="loader-owner-watch", daemon=True).start()


def _worker_kwargs(num_workers, pin_memory, persistent_workers, start_method):
    kwargs = {
        "num_workers": num_workers,
        "pin_memory": bool(pin_memory) and torch.cuda.is_available(),
        "persistent_workers": bool(persistent_workers) and num_workers > 0,
    }
    if num_workers == 0:
        return kwargs
    # Not fork by default: this process runs communication, checkpoint and logging threads, and a fork
    # taken while one of them holds an interpreter lock leaves the worker hung for ever (seen with
    # CPython 3.11: the child waits on the thread-state lock). forkserver forks workers from a clean,
    # single-threaded server that has already imported the entry script and this package, so starting a
    # worker stays cheap. The server (and so every worker) keeps the environment of its start, and the
    # entry script needs the `if __name__ == "__main__":` guard, as for spawn.
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        context.set_forkserver_preload(["__main__", __name__])  # no effect once the server runs
        kwargs["worker_init_fn"] = functools.partial(_exit_when_gone, os.getpid())
    kwargs["multiprocessing_context"] = context
    return kwargs


def create_train_loader(dataset, batch_size, dist: DistInfo, num_workers=4, pin_memory=True,
                        persistent_workers=True, seed=0, drop_last=True, augment_seed=None,
                        start_method="forkserver"):
    """Shuffled, rank-partitioned training batches (images, captions, img_idx) as official.

    The sampler is `loader.sampler` (ResumableDistributedSampler): call `set_epoch(e)` each epoch and
    `set_start_index(batches_done * batch_size)` to resume inside an epoch. `seed` shuffles (official: 0);
    `augment_seed` (None: the process's global generators, as official) seeds each sample's augmentation.
    `start_method`: multiprocessing start method of the workers (see _worker_kwargs).
    """
    sampler = ResumableDistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                          seed=seed, augment_seed=augment_seed)
    return CountingLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                          **_worker_kwargs(num_workers, pin_memory, persistent_workers, start_method))


def create_eval_image_loader(dataset, batch_size, dist: DistInfo, num_workers=4, pin_memory=True,
                             persistent_workers=False, start_method="forkserver"):
    """This rank's contiguous slice of the eval images, in order, as (images, indices) batches.

    Ranks may get unequal counts; with skip_bad_images a bad image's index is simply absent.
    """
    sampler = ContiguousSliceSampler(len(dataset), dist.rank, dist.world_size)
    return CountingLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=False,
                          **_worker_kwargs(num_workers, pin_memory, persistent_workers, start_method))
