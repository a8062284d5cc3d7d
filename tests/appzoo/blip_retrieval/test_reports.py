"""The evaluate page: the R@K table, the queries that missed R@1 worst first, the ground truth marked; every
thumbnail it shows is there. Rankings are hand-made, so the expected order is known."""
import os
import re
import sys

import numpy as np

from appzoo.blip_retrieval.data.datasets import RetrievalEvalDataset
from appzoo.blip_retrieval.data.transforms import create_transform
from appzoo.blip_retrieval.evaluation.evaluator import EvalResult, TopK
from appzoo.blip_retrieval.reports import write_evaluate_report

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "evaluation"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "index"))
from eval_fixtures import write_gallery  # noqa: E402
from index_fixtures import check_html  # noqa: E402


def test_evaluate_page_lists_misses_worst_first_with_ground_truth_marked(tmp_path):
    ann = write_gallery(str(tmp_path), 4, captions_per_image=(1, 1), seed=2)  # text t belongs to image t
    dataset = RetrievalEvalDataset(ann, str(tmp_path / "images"), create_transform(32, train=False))
    k = 3
    # t2i candidates per text (best first): text 0 right at rank 1; text 1 at rank 2; text 2 not re-ranked;
    # text 3 at rank 3.
    t2i_index = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 3], [0, 1, 3]])
    i2t_index = np.array([[0, 1, 2], [0, 1, 2], [2, 0, 1], [3, 0, 1]])
    scores = np.tile(np.array([[3.0, 2.0, 1.0]], np.float32), (4, 1))
    metrics = {"txt_r1": 75.0, "txt_r5": 100.0, "txt_r10": 100.0, "img_r1": 25.0, "img_r5": 75.0, "img_r10": 75.0,
               "r_mean": 75.0}
    result = EvalResult(metrics, TopK(i2t_index, scores), TopK(t2i_index, scores))
    page = write_evaluate_report(str(tmp_path / "eval.html"), {"test": result}, {"test": dataset})
    count, text = check_html(page)
    assert "text R@1" in text and "75.00" in text and "25.00" in text
    notes = re.findall(r"ground truth [^ ]+ (?:at rank \d+|is not among the \d+ re-ranked candidates)", text)
    names = dataset.image
    assert notes[:3] == [f"ground truth {names[2]} is not among the {k} re-ranked candidates",
                         f"ground truth {names[3]} at rank 3", f"ground truth {names[1]} at rank 2"]
    assert "test, image retrieval: 3 of 4 queries missed R@1" in text
    assert "test, text retrieval: 1 of 4 queries missed R@1" in text  # image 1: its caption at rank 2
    with open(page, encoding="utf-8") as handle:
        marked = handle.read().count("class='hit correct'")
    assert marked == 3 + 1  # text queries: ranks 2 and 3 among the hits, the not re-ranked one appended; a caption
    # text queries: 3 misses x 3 hits, + the ground truth of the one not re-ranked (shown after them);
    # image queries: 1 query image (its hits are captions)
    assert count == 3 * 3 + 1 + 1
