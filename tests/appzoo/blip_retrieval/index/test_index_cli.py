"""`easyretrieval index` / `search`: a build (a real process) killed with SIGKILL resumes into the index of one
uninterrupted build; search prints the Python API's results and writes a page that references every
thumbnail; a query with another model's index is refused in one line (the CLI in this process); two ranks
(torchrun, CPU) split an annotation file's gallery and give the index of one process."""
import json
import os
import signal
import sys
import time

import numpy as np
import process_launch
import pytest
from index_fixtures import NUM_IMAGES, check_html, make_setup

from appzoo.blip_retrieval import Index
from easyretrieval.index import GalleryStore

CLI = [sys.executable, "-c", "import sys; from easyretrieval.cli import main; sys.exit(main())"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("index_cli"))
    return (root,) + make_setup(root)


def _index_cmd(model_dir, gallery, out):
    return CLI + ["index", "--pretrained", model_dir, "--gallery", gallery, "--output", out, "--batch_size", "2",
                  "--commit_every", "2", "--num_workers", "0"]


def test_sigkill_then_resume_gives_the_uninterrupted_index(setup):
    root, model, _, gallery, _, model_dir, _ = setup
    out = os.path.join(root, "killed")
    # The last file of the gallery is a FIFO: reading it blocks, so the build is killed at a known point,
    # with the images before it committed (or not yet: the one in the same batch).
    fifo = os.path.join(gallery, "zz_wait.jpg")
    os.mkfifo(fifo)
    proc = process_launch.start(_index_cmd(model_dir, gallery, out), env=ENV)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            store = GalleryStore.open(out) if os.path.isfile(os.path.join(out, "index.json")) else None
            if store is not None and len(store.committed_ids()) == NUM_IMAGES - 1:  # all but the one beside the FIFO
                break
            time.sleep(0.2)
        time.sleep(0.5)  # it is blocked reading the FIFO now
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        code, _, err = process_launch.finish(proc, 60)
    assert code == -signal.SIGKILL, err[-3000:]
    assert not os.path.isfile(os.path.join(out, "faiss.json"))  # killed before finishing
    os.remove(fifo)

    resumed = process_launch.run(_index_cmd(model_dir, gallery, out), 300, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = resumed.stdout.strip().splitlines()[-1]
    assert f"{NUM_IMAGES} images (1 embedded now, {NUM_IMAGES - 1} were already in it)" in summary
    assert "1 images could not be read" in summary and os.path.join(out, "failed") in summary
    assert "embedding images" in resumed.stderr  # the progress bar

    whole = Index.build(model, gallery, os.path.join(root, "whole"), progress=False)
    killed = Index.open(out)
    assert [e["id"] for e in killed.gallery.entries] == [e["id"] for e in whole.gallery.entries]
    np.testing.assert_allclose(killed.gallery.features, whole.gallery.features, atol=1e-6)
    with open(os.path.join(out, "failed", "r000.jsonl"), encoding="utf-8") as handle:
        failed = [json.loads(line) for line in handle]
    assert {f["name"] for f in failed} == {"broken.jpg"} and all(f["error"] for f in failed)


def _run_main(argv, capsys):
    """The CLI in this process (the same code path, without another interpreter's start-up)."""
    from easyretrieval.cli import run_main

    capsys.readouterr()
    code = run_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_search_prints_the_api_results_and_a_page_with_every_thumbnail(setup, capsys):
    root, model, _, gallery, _, model_dir, _ = setup
    out = os.path.join(root, "killed")
    if not os.path.isfile(os.path.join(out, "faiss.json")):
        pytest.skip("needs the index of the SIGKILL test")
    queries = ["red dog on the grass", "a small boat near the lake", "man sits in the park"]
    with open(os.path.join(root, "queries.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(queries) + "\n")
    page = os.path.join(root, "pages", "search.html")
    code, stdout, err = _run_main(["search", "--index", out, "--queries", os.path.join(root, "queries.txt"),
                                   "--top_k", "3", "--rerank", "5", "--report", page], capsys)
    assert code == 0, err[-3000:]
    lines = [json.loads(line) for line in stdout.strip().splitlines()]
    expected = Index.open(out).search(model, queries, top_k=3, rerank=5)
    assert [line["query"] for line in lines] == queries
    for line, result in zip(lines, expected):
        assert line["scored_by"] == "itm+itc"
        assert [(h["rank"], h["id"], h["path"]) for h in line["hits"]] == [(h.rank, h.id, h.path) for h in result.hits]
        np.testing.assert_allclose([h["score"] for h in line["hits"]], [h.score for h in result.hits], atol=1e-5)
    count, text = check_html(page)
    assert count == 9 and all(q in text for q in queries)


def test_a_query_with_another_models_index_is_refused_in_one_line(setup, capsys):
    root, _, _, _, _, _, other_dir = setup
    out = os.path.join(root, "killed")
    if not os.path.isfile(os.path.join(out, "faiss.json")):
        pytest.skip("needs the index of the SIGKILL test")
    code, stdout, err = _run_main(["search", "--index", out, "--query", "a red dog", "--pretrained", other_dir], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "was built with another model (weights_sha256:" in lines[0] and stdout == ""


def test_one_line_refusals_before_any_model(setup, capsys):
    root, _, _, gallery, _, model_dir, _ = setup
    image = os.path.join(gallery, "img_0001.jpg")
    cases = [
        (["search", "--index", os.path.join(root, "nowhere"), "--query", "x"], "is not a gallery index"),
        (["search", "--index", root, "--image", image, "--rerank", "10"], "--rerank needs text queries"),
        (["search", "--index", root, "--query", "x", "--top_k", "5", "--rerank", "2"], "--rerank >= --top_k"),
        (["search", "--index", root, "--query", "x", "--report", os.path.join(root, "r.txt")], "ending in .html"),
        (["index", "--pretrained", model_dir, "--gallery", os.path.join(root, "nope"), "--output",
          os.path.join(root, "i2")], "--gallery"),
        (["index", "--pretrained", model_dir, "--gallery", gallery, "--output", image], "is a file"),
    ]
    for argv, message in cases:
        code, _, err = _run_main(argv, capsys)
        err = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1 and message in err[0], (argv, err)


def test_two_ranks_split_an_annotation_gallery_into_one_index(setup):
    root, model, _, _, ann, model_dir, _ = setup
    images = os.path.join(root, "images")
    out = os.path.join(root, "two_ranks")
    proc = process_launch.run(process_launch.torchrun_cli(2) + ["index", "--pretrained", model_dir, "--gallery", ann, "--image_root",
                                              images, "--output", out, "--batch_size", "2", "--commit_every", "2",
                                              "--num_workers", "0"], 300, env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f"{NUM_IMAGES} images ({NUM_IMAGES} embedded now, 0 were already in it)" in proc.stdout
    shards = sorted(os.listdir(os.path.join(out, "shards")))
    per_rank = {rank: sum(n.startswith(f"r00{rank}-") and n.endswith(".json") for n in shards) for rank in (0, 1)}
    assert per_rank == {0: 3, 1: 3}, shards  # 6 images each, committed 2 at a time
    one = Index.build(model, ann, os.path.join(root, "one_rank"), image_root=images, progress=False)
    two = Index.open(out)
    assert [e["name"] for e in two.gallery.entries] == [f"img_{i:04d}.jpg" for i in range(NUM_IMAGES)]
    assert [e["id"] for e in two.gallery.entries] == [e["id"] for e in one.gallery.entries]
    np.testing.assert_allclose(two.gallery.features, one.gallery.features, atol=1e-6)
