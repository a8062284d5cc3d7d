"""exit_process: the exit code and all buffered output survive skipping finalization after a process group."""
import subprocess
import sys

SCRIPT = """
import sys
from easyretrieval.distributed import DistInfo, exit_process, init_distributed, shutdown_distributed
init_distributed(DistInfo())
sys.stdout.write("buffered-out")  # no newline, stdout is a pipe: only a flush gets it out
sys.stderr.write("buffered-err")
shutdown_distributed()
exit_process(int(sys.argv[1]))
print("not reached")
"""


def run(code):
    return subprocess.run([sys.executable, "-c", SCRIPT, str(code)], capture_output=True, text=True, timeout=120)


def test_exit_code_and_buffered_output_survive():
    for code in (0, 3):
        result = run(code)
        assert result.returncode == code, result.stderr
        assert result.stdout.endswith("buffered-out") and "not reached" not in result.stdout
        assert "buffered-err" in result.stderr


def test_without_a_process_group_it_is_sys_exit():
    result = subprocess.run([sys.executable, "-c", "import atexit, sys\n"
                             "from easyretrieval.distributed import exit_process\n"
                             "atexit.register(lambda: print('finalized'))\nexit_process(4)"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 4 and result.stdout.strip() == "finalized"
