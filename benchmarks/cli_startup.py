"""CLI start-up: `easyretrieval --help`, `--list-apps` and `--help-params` against a bare Python start and
`import torch`, each in a fresh process (the goal: the three answer in under 1.5 s, no torch import).

    python benchmarks/cli_startup.py [--repeats 5]

Prints the median wall time of each and its ratio to the bare interpreter start.
"""
import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "easyretrieval --help": [sys.executable, "-m", "easyretrieval.cli", "--help"],
    "easyretrieval --list-apps": [sys.executable, "-m", "easyretrieval.cli", "--list-apps"],
    "easyretrieval --app blip_retrieval --help-params": [sys.executable, "-m", "easyretrieval.cli", "--app",
                                                         "blip_retrieval", "--help-params"],
}


def median_seconds(cmd, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command (the median is shown)")
    args = parser.parse_args()
    base = None
    for name, cmd in CASES.items():
        seconds = median_seconds(cmd, args.repeats)
        base = base or seconds
        print(f"{name:<50} {seconds:6.3f} s  {seconds / base:5.2f}x python start", flush=True)


if __name__ == "__main__":
    main()
