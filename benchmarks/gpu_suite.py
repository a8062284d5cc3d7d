"""The GPU check: the figures our users care about, in one run of at most 8 minutes on one GPU.

Parts, in this order (each a benchmark script of this folder, run in its own process group with its own
time box; a part that overruns is killed and reported with whatever rows it finished):
  eval     eval_speed.py: ViT-B 384 px, k_test 128, 1,000 images x 5,000 texts; ours fp32 vs the official
           loop (timed on a fixed sample of 40 image + 200 text queries and extrapolated: said in the
           output), R@K identical on the sampled queries; then ours in bf16: time, R@K change and the
           share of queries with the same top-1 as fp32 (random weights: R@K sits at chance).
  train_b  train_speed.py: ViT-B 384 px, batch 32, vit_ckpt_layer 4, queue 57,600: plain PyTorch DDP fp32
           loop (official recipe) vs our engine, ZeRO-2 bf16: samples/s, ratio, peak memory.
  loader   loader_speed.py: the train transform at 384 px from 640x480 JPEG files, 8 and 16 workers,
           images/s against train_b's step rate (does the loader keep up?).
  train_l  train_speed.py: ViT-L 384 px, batch 16, vit_ckpt_layer 10, our engine ZeRO-2 bf16: does it
           fit, samples/s, peak memory.
  memory   model_memory.py: peak memory and step time, bf16, batch 8, ViT-B ckpt 0 / 4, ViT-L 0 / 10.
Synthetic inputs only, made where it runs. Writes one JSON file (--out) and prints a table.

  python benchmarks/gpu_suite.py --out gpu_suite.json          # on the GPU machine (see gpu_suite.sh)
  python benchmarks/gpu_suite.py --smoke --out /tmp/smoke.json  # the same code paths, toy sizes, CPU, < 90 s
"""
import argparse
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUDGET_S = 480  # the whole suite: 8 minutes
SMOKE_BUDGET_S = 720  # --smoke: a bound for a loaded machine, not a target
# --standalone: a rendezvous on a free local port, so two launches at once never meet on the default port.
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
_running = {}  # the part in progress: {"pid": ...}, killed with the suite (see _stop)


def _script(name):
    return [sys.executable, os.path.join(HERE, name)]


def _torchrun(name):
    return TORCHRUN + [os.path.join(HERE, name)]


def parts(smoke: bool, work: str):
    """(name, time box in s, command with {json} for the part's result file)."""
    if smoke:  # under 90 s on a quiet 2-core CPU; the boxes only bound a stuck part on a loaded machine
        return [
            ("eval", 120, _script("eval_speed.py") + [
                "--vit", "tiny", "--image-size", "32", "--images", "20", "--k-test", "4", "--precisions", "fp32",
                "--official-queries", "5", "--device", "cpu", "--data-dir", os.path.join(work, "eval")]),
            ("train_b", 180, _torchrun("train_speed.py") + [
                "--vit", "tiny", "--image_size", "32", "--batch", "4", "--steps", "2", "--stages", "2",
                "--ckpt_layers", "1", "--queue_size", "64"]),
            ("loader", 120, _script("loader_speed.py") + [
                "--images", "16", "--source-size", "96x64", "--image-size", "32", "--batch", "4", "--batches", "2",
                "--workers", "0,1", "--data-dir", os.path.join(work, "loader")]),
            ("train_l", 180, _torchrun("train_speed.py") + [
                "--vit", "tiny", "--image_size", "32", "--batch", "2", "--steps", "2", "--stages", "2",
                "--ckpt_layers", "2", "--queue_size", "64", "--skip_ddp"]),
            ("memory", 120, _script("model_memory.py") + [
                "--setups", "tiny:0,tiny:1", "--image-size", "32", "--batch", "2", "--steps", "1"]),
        ]
    return [
        ("eval", 180, _script("eval_speed.py") + [
            "--vit", "base", "--image-size", "384", "--images", "1000", "--captions-per-image", "5",
            "--k-test", "128", "--batch-size", "64", "--precisions", "fp32,bf16", "--official-queries", "40",
            "--data-dir", os.path.join(work, "eval")]),
        ("train_b", 110, _torchrun("train_speed.py") + [
            "--vit", "base", "--image_size", "384", "--batch", "32", "--steps", "8", "--stages", "2",
            "--ckpt_layers", "4", "--precision", "bf16", "--queue_size", "57600"]),
        ("loader", 55, _script("loader_speed.py") + [
            "--images", "256", "--source-size", "640x480", "--image-size", "384", "--batch", "32",
            "--batches", "40", "--workers", "8,16", "--data-dir", os.path.join(work, "loader")]),
        ("train_l", 80, _torchrun("train_speed.py") + [
            "--vit", "large", "--image_size", "384", "--batch", "16", "--steps", "6", "--stages", "2",
            "--ckpt_layers", "10", "--precision", "bf16", "--queue_size", "57600", "--skip_ddp"]),
        ("memory", 55, _script("model_memory.py") + [
            "--setups", "base:0,base:4,large:0,large:10", "--dtype", "bf16", "--batch", "8", "--steps", "3"]),
    ]


def kill_part(pid, grace_s=5.0):
    """End a part and every process under it: SIGTERM to its process group (torchrun forwards it to its
    ranks, which it starts in sessions of their own), then SIGKILL to whatever is left of the tree."""
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        procs = []
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stop(signum, _frame):
    """SIGTERM/SIGINT: the running part is in its own process group, so end it with the suite."""
    if "pid" in _running:
        kill_part(_running["pid"])
    sys.exit(128 + signum)


def run_part(name, box_s, command, json_path, log):
    """Run one part in its own process group; kill the group at the time box. Returns its record."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    header = f"\n===== {name} (time box {box_s:.0f} s): {' '.join(command)}\n"
    log.write(header)
    log.flush()
    print(header.strip(), flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(command + ["--json", json_path], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    _running["pid"] = proc.pid
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=box_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_part(proc.pid)
        output, _ = proc.communicate()
    _running.pop("pid", None)
    seconds = time.perf_counter() - start
    log.write(output)
    log.flush()
    for line in output.splitlines():  # the part's own lines, without library warnings
        if "warn" not in line.lower() and line.strip():
            print(f"  [{name}] {line[:300]}", flush=True)
    result = None
    if os.path.isfile(json_path):
        with open(json_path, encoding="utf-8") as handle:
            result = json.load(handle)
    status = "timeout" if timed_out else ("ok" if proc.returncode == 0 and result is not None else
                                          f"failed (exit {proc.returncode})")
    return {"status": status, "seconds": round(seconds, 1), "time_box_s": box_s, "result": result,
            "output_tail": "\n".join(output.splitlines()[-15:]) if status != "ok" else ""}


def _fmt(value, spec=".1f"):
    return "-" if value is None else format(value, spec)


def summary_lines(records):
    """One line per part: the figures the README's benchmark table quotes."""
    lines = []
    for name, rec in records.items():
        res = rec.get("result") or {}
        what = ""
        if name == "eval" and res.get("ours"):
            first = next(iter(res["ours"]))
            ours = res["ours"][first]
            what = f"ours {first} {ours['seconds']:.1f} s"
            if res.get("official"):
                off = res["official"]
                how = "extrapolated" if off["extrapolated"] else "measured"
                what += (f" vs official {off['seconds']:.1f} s ({how}) = {res['speedup']:.2f}x; R@K identical "
                         f"({res['recall_checked_on']}): {res['recall_identical']}")
            for precision, row in list(res["ours"].items())[1:]:
                change = row.get(f"recall_change_vs_{first}", {})
                agree = row.get(f"score_change_vs_{first}", {})
                what += (f"; {precision} {row['seconds']:.1f} s, r_mean change {_fmt(change.get('r_mean'), '+.2f')}, "
                         f"same top-1 i2t {_fmt(agree.get('top1_agreement_i2t'), '.3f')} "
                         f"t2i {_fmt(agree.get('top1_agreement_t2i'), '.3f')}")
        elif name.startswith("train") and res.get("rows"):
            parts_ = []
            for row in res["rows"]:
                if not row["fits"]:
                    parts_.append(f"{row['setup']} ckpt {row['ckpt_layer']}: out of memory")
                    continue
                ratio = f" = {row['speed_vs_ddp']:.2f}x" if row.get("speed_vs_ddp") else ""
                parts_.append(f"{row['setup']} ckpt {row['ckpt_layer']}: {row['samples_per_s']:.1f} samples/s{ratio}, "
                              f"peak {row['peak_mb'] / 1024:.1f} GiB")
            what = f"{res['vit']} {res['image_size']} px batch {res['batch_per_rank']}: " + "; ".join(parts_)
        elif name == "loader" and res.get("rows"):
            what = "; ".join(f"{r['workers']} workers {r['images_per_s']:.0f} images/s" for r in res["rows"])
            step_rate = _engine_rate(records.get("train_b"))
            if step_rate:
                best = max(r["images_per_s"] for r in res["rows"])
                what += f"; train_b consumes {step_rate:.0f} samples/s: loader {'keeps up' if best >= step_rate else 'is slower'} ({best / step_rate:.2f}x)"
        elif name == "memory" and res.get("rows"):
            what = "; ".join(f"{r['vit']} ckpt {r['vit_ckpt_layer']}: {r['memory_gib']:.1f} GiB {r['step_ms']:.0f} ms"
                             for r in res["rows"])
        lines.append(f"{name:<8} {rec['status']:<18} {rec['seconds']:>6.1f} s  {what}")
    return lines


def _engine_rate(record):
    rows = ((record or {}).get("result") or {}).get("rows") or []
    rates = [r["samples_per_s"] for r in rows if r.get("fits") and r["setup"].startswith("ours")]
    return rates[0] if rates else None


def environment():
    info = {"python": platform.python_version(), "host_cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    try:
        import torch

        info["torch"] = torch.__version__
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception as e:  # noqa: BLE001 - reported, the parts will fail with their own message
        info["torch"] = f"unavailable: {e}"
    for package in ("deepspeed", "transformers", "timm", "opencv-python-headless"):
        try:  # the installed version, without importing the package
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="toy sizes on CPU: checks every code path")
    parser.add_argument("--out", default="gpu_suite.json", help="the results JSON file")
    parser.add_argument("--log", default="", help="the parts' whole output (default: OUT with .log)")
    parser.add_argument("--budget", type=float, default=None,
                        help=f"seconds for the whole suite (default {BUDGET_S}; --smoke: {SMOKE_BUDGET_S})")
    parser.add_argument("--only", default="", help="comma-separated part names to run (default: all)")
    parser.add_argument("--work-dir", default="", help="where synthetic inputs are written (default: a temp dir)")
    args = parser.parse_args()

    if args.budget is None:
        args.budget = SMOKE_BUDGET_S if args.smoke else BUDGET_S
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    work = args.work_dir or tempfile.mkdtemp(prefix="easyretrieval_gpu_suite_")
    os.makedirs(work, exist_ok=True)
    only = {p for p in args.only.split(",") if p}
    results = {"suite": "smoke" if args.smoke else "gpu", "environment": environment(), "budget_s": args.budget,
               "parts": {}}
    print(json.dumps(results["environment"]), flush=True)
    log_path = args.log or os.path.splitext(args.out)[0] + ".log"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        for name, box_s, command in parts(args.smoke, work):
            if only and name not in only:
                continue
            left = args.budget - (time.perf_counter() - started)
            if left < 10:
                results["parts"][name] = {"status": "not run (suite budget spent)", "seconds": 0.0, "result": None}
                continue
            json_path = os.path.join(work, f"{name}.json")
            if os.path.exists(json_path):
                os.remove(json_path)
            results["parts"][name] = run_part(name, min(box_s, left), command, json_path, log)
            with open(args.out, "w", encoding="utf-8") as handle:  # after every part: an overrun keeps the rest
                json.dump(results, handle, indent=1)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["summary"] = summary_lines(results["parts"])
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    print(f"\n{'part':<8} {'status':<18} {'time':>8}  figures ({results['environment'].get('device')}, "
          f"{results['seconds']:.0f} s in all)")
    for line in results["summary"]:
        print(line)
    print(f"results: {args.out}  log: {log_path}")
    return 0 if all(rec["status"] == "ok" for rec in results["parts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
