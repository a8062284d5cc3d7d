"""Everything heavy-but-once before training or evaluation: generated data (synthetic), then validation.

Per node, local rank 0 generates the synthetic dataset and checks the annotation files; the outcome is
shared with every rank (all_gather_object), so all ranks fail together with the same one-line message
instead of some waiting forever in a collective.
"""
import torch.distributed as torch_dist

from appzoo.blip_retrieval.data.builders import SPLITS, data_files, dataset_files, split_kind
from appzoo.blip_retrieval.data.validation import validate_annotations
from easyretrieval.distributed import DistInfo, barrier, multi_rank
from easyretrieval.errors import UserError


def _first_problem_of_all_ranks(problem, dist):
    """The first non-None problem over all ranks (rank order); just `problem` without a process group."""
    if not multi_rank():
        return problem
    gathered = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(gathered, problem)
    return next((p for p in gathered if p), None)


def _generate_once(config, source, dist, barrier_fn):
    """Local rank 0 generates (or reuses) the dataset while the node's other ranks wait."""
    failure = None
    if dist.is_local_main:
        try:
            source.generate(config)
        except Exception as e:  # noqa: BLE001 - reach the barrier before failing, so no rank hangs
            failure = e
    barrier_fn()
    if failure is not None:
        raise failure
    source.check_generated(config)


def _check(found, splits, decode_images):
    try:
        for kind in ("train", "eval"):
            files = {s: found.files[s] for s in splits if split_kind(s) == kind}
            if files:
                validate_annotations(files, found.image_root, kind, decode=decode_images)
    except UserError as e:
        return str(e)
    return None


def prepare_data(config, dist: DistInfo = DistInfo(), splits=SPLITS, barrier_fn=barrier, decode_images=None):
    """Generate the dataset when it is generated (synthetic; once per node), then check every annotation file
    of `splits`.

    Images are checked for presence, or fully decoded with `decode_images` (default: config.verify_images).
    Returns the DataFiles (image root and annotation paths). Raises UserError listing the problems. With
    an initialised process group only local rank 0 of each node checks; without one every rank does.
    """
    if decode_images is None:
        decode_images = bool(config.get("verify_images", False))
    source = dataset_files(config)
    if source.generated(config):
        _generate_once(config, source, dist, barrier_fn)
    problem, found = None, None
    try:
        found = data_files(config, splits)  # fetches missing flickr annotations (once per node, locked)
    except UserError as e:
        problem = str(e)
    if found is not None and (dist.is_local_main or not multi_rank()):
        problem = _check(found, splits, decode_images)
    problem = _first_problem_of_all_ranks(problem, dist)
    if problem:
        raise UserError(problem)
    return found
