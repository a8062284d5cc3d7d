"""The test launcher helper: a timed-out command dies with everything it started, also children that left
its session (as torchrun's ranks do)."""
import subprocess
import sys
import time

import psutil
import pytest

import process_launch

# The parent starts a child in a session of its own (like a torchrun rank), prints its pid, then hangs.
TREE = ("import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(300)\n")


def _gone(pid, within_s=10.0):
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_timeout_kills_the_whole_tree():
    with pytest.raises(subprocess.TimeoutExpired) as info:
        process_launch.run([sys.executable, "-c", TREE], timeout=5)
    child = int(info.value.output.split()[0])
    assert _gone(child), "the child in its own session outlived the timed-out launcher"


def test_a_finished_command_gives_its_code_and_output():
    proc = process_launch.run([sys.executable, "-c", "import sys; print('out'); sys.exit(3)"], timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (3, "out")
