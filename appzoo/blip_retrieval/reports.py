"""HTML pages of BLIP retrieval results (easyretrieval.report.write_html_report): search, predict, evaluate.

Thumbnails are embedded in the page (one file to share) while it shows at most EMBED_LIMIT distinct images,
else written as JPEG files in a folder beside it (FILE_files/). Evaluate's page holds the R@K table of every
split and, per split and direction, the queries whose ground truth missed R@1, worst first (ground truth
not re-ranked at all, then by its rank), each with its best hits, the ground truth marked.
"""
import os
from typing import Dict, List

import numpy as np

from easyretrieval import fileio
from easyretrieval.report import Hit, QueryResult, write_html_report

EMBED_LIMIT = 300      # distinct thumbnails embedded in the page; above, a folder beside it
MISSES_SHOWN = 50      # evaluate: worst queries shown per split and direction
HITS_SHOWN = 5         # evaluate: hits shown per query
PREDICT_QUERIES_SHOWN = 200
FILL_SCORE = -100.0    # the official score of a candidate that ITM did not re-rank

_RECALL_COLUMNS = (("text R@1", "txt_r1"), ("text R@5", "txt_r5"), ("text R@10", "txt_r10"),
                   ("image R@1", "img_r1"), ("image R@5", "img_r5"), ("image R@10", "img_r10"),
                   ("r_mean", "r_mean"))


def _write(path, title, queries, metrics=None, intro=""):
    images = {q.query_image for q in queries if q.query_image} | {h.path for q in queries for h in q.hits if h.path}
    mode = "embed" if len(images) <= EMBED_LIMIT else "folder"
    return write_html_report(path, title, queries, metrics=metrics, intro=intro, thumbnails=mode)


def write_search_report(path: str, results, index) -> str:
    """The page of `Index.search` / `search_images` results (QueryHits) on `index`."""
    queries = []
    for result in results:
        hits = [Hit(h.id, h.score, path=h.path) for h in result.hits]
        image = result.kind == "image"
        queries.append(QueryResult(query_image=result.query if image else None,
                                   query_text=None if image else result.query, hits=hits))
    scored = {r.scored_by for r in results}
    what = ("ITM positive logit + ITC similarity (re-ranked as evaluation does)" if scored == {"itm+itc"}
            else "ITC cosine similarity")
    intro = f"Index {index.folder}: {len(index)} images; model {index.about.get('source') or 'not recorded'}. " \
            f"Scores: {what}."
    return _write(path, f"Search: {os.path.basename(index.folder.rstrip('/'))}", queries, intro=intro)


def write_predict_report(path: str, rankings, gallery, queries) -> str:
    """The page of predict's rankings (predict.Rankings) of `gallery` for `queries` (predict_inputs.Items)."""
    shown = min(len(queries.ids), PREDICT_QUERIES_SHOWN)
    pages = []
    for q in range(shown):
        rows = [(int(i), float(s)) for i, s in zip(rankings.index[q], rankings.score[q]) if i >= 0]
        if rankings.text_to_image:
            hits = [Hit(gallery.ids[i], s, path=gallery.values[i]) for i, s in rows]
            pages.append(QueryResult(query_text=queries.values[q], hits=hits))
        else:
            hits = [Hit(gallery.ids[i], s, text=gallery.values[i]) for i, s in rows]
            pages.append(QueryResult(query_image=queries.values[q], hits=hits, note=queries.ids[q]))
    intro = (f"{len(queries.ids)} {'text' if rankings.text_to_image else 'image'} queries against "
             f"{len(gallery.ids)} {gallery.kind}" + (f"; the first {shown} are shown" if shown < len(queries.ids) else "")
             + ". Scores: ITM positive logit + ITC similarity (the official two-stage ranking).")
    return _write(path, "Predict", pages, intro=intro)


def _gt_rank(candidates: np.ndarray, truths) -> int:
    """0-based rank of the best ground truth among the candidates; len(candidates) when none is there."""
    found = [r for r, c in enumerate(candidates) if int(c) in truths]
    return min(found) if found else len(candidates)


def _misses(index: np.ndarray, score: np.ndarray, truths_of) -> List[tuple]:
    """(gt rank, query) of the queries whose ground truth is not first, worst first (ties: lower query)."""
    ranks = [(_gt_rank(index[q], truths_of(q)), q) for q in range(index.shape[0])]
    return sorted([(r, q) for r, q in ranks if r > 0], key=lambda item: (-item[0], item[1]))


def _rank_note(rank, k, truth_name):
    if rank >= k:
        return f"ground truth {truth_name} is not among the {k} re-ranked candidates (score {FILL_SCORE:g})"
    return f"ground truth {truth_name} at rank {rank + 1}"


def _t2i_queries(split, result, dataset) -> List[QueryResult]:
    image_path = [fileio.join(dataset.image_root, name) for name in dataset.image]
    index, score = result.t2i.index, result.t2i.score
    out = []
    misses = _misses(index, score, lambda t: {dataset.txt2img[t]})
    for rank, t in misses[:MISSES_SHOWN]:
        truth = dataset.txt2img[t]
        hits = [Hit(dataset.image[int(i)], float(s), path=image_path[int(i)], correct=int(i) == truth)
                for i, s in zip(index[t][:HITS_SHOWN], score[t][:HITS_SHOWN]) if i >= 0]
        if rank >= min(HITS_SHOWN, index.shape[1]):  # the ground truth itself, after the hits that beat it
            gt_score = float(score[t][rank]) if rank < index.shape[1] else FILL_SCORE
            hits.append(Hit(f"ground truth: {dataset.image[truth]}", gt_score, path=image_path[truth], correct=True))
        out.append(QueryResult(query_text=dataset.text[t], hits=hits, section=_section(split, "image", len(misses),
                                                                                         index.shape[0]),
                               note=_rank_note(rank, index.shape[1], dataset.image[truth])))
    return out


def _i2t_queries(split, result, dataset) -> List[QueryResult]:
    image_path = [fileio.join(dataset.image_root, name) for name in dataset.image]
    index, score = result.i2t.index, result.i2t.score
    misses = [(r, i) for r, i in _misses(index, score, lambda i: set(dataset.img2txt.get(i, [])))
              if dataset.img2txt.get(i)]  # an image without captions (or unread) has nothing to miss
    out = []
    for rank, i in misses[:MISSES_SHOWN]:
        truths = set(dataset.img2txt[i])
        hits = [Hit(f"caption {int(t)}", float(s), text=dataset.text[int(t)], correct=int(t) in truths)
                for t, s in zip(index[i][:HITS_SHOWN], score[i][:HITS_SHOWN]) if t >= 0]
        if rank >= min(HITS_SHOWN, index.shape[1]):
            t = int(index[i][rank]) if rank < index.shape[1] else min(truths)
            gt_score = float(score[i][rank]) if rank < index.shape[1] else FILL_SCORE
            hits.append(Hit(f"ground truth: caption {t}", gt_score, text=dataset.text[t], correct=True))
        out.append(QueryResult(query_image=image_path[i], hits=hits,
                               section=_section(split, "text", len(misses), index.shape[0]),
                               note=f"{dataset.image[i]}: " + _rank_note(rank, index.shape[1], "caption")))
    return out


def _section(split, direction, missed, total):
    shown = min(missed, MISSES_SHOWN)
    return (f"{split}, {direction} retrieval: {missed} of {total} queries missed R@1"
            + (f" (the {shown} worst shown)" if shown < missed else "") + "; ground truth marked ✓")


def write_evaluate_report(path: str, results: Dict[str, object], datasets: Dict[str, object]) -> str:
    """The page of an evaluation: {split: EvalResult} on {split: RetrievalEvalDataset}."""
    metrics = {split: {label: float(r.metrics[key]) for label, key in _RECALL_COLUMNS if key in r.metrics}
               for split, r in results.items()}
    queries = []
    for split, result in results.items():
        queries += _t2i_queries(split, result, datasets[split]) + _i2t_queries(split, result, datasets[split])
    intro = ("Recall (%) per split, then the queries whose ground truth missed R@1, worst first. Scores: ITM "
             "positive logit + ITC similarity of the re-ranked candidates (official two-stage ranking).")
    return _write(path, "Evaluation", queries, metrics=metrics, intro=intro)
