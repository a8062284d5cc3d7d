"""Run a test's subprocess (a CLI run, a torchrun or deepspeed launcher) so that nothing it started outlives it.

torchrun starts each rank in a session of its own, and ranks start loader workers: killing the launcher, or
even its process group, leaves them running (holding the test's output pipes open, and the CPUs busy). `run`
starts the command in a new session and, when it times out or ends, kills every process descended from it
(found with psutil, before any is signalled) and its process group. On timeout it raises
subprocess.TimeoutExpired carrying the output so far.
"""
import os
import signal
import socket
import subprocess
import sys

import psutil


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`, its process group and every process descended from it (a snapshot taken first)."""
    try:
        root = psutil.Process(pid)
        family = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        family = []
    try:
        os.killpg(pid, signal.SIGKILL)  # the launcher's own group (it leads it: start_new_session)
    except (ProcessLookupError, PermissionError):
        pass
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def run(cmd, timeout, env=None, cwd=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    """subprocess.run(cmd, text=True, timeout=timeout) in a new session; everything it started is killed when
    it ends or times out. stdout/stderr: PIPE (captured) or a file object."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=stdout, stderr=stderr, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(cmd, timeout, output=out, stderr=err) from None
    except BaseException:
        kill_tree(proc.pid)
        proc.wait()
        raise
    kill_tree(proc.pid)  # whatever it left behind (none after a clean exit)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def start(cmd, env=None, cwd=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    """A Popen in a new session, for tests that run several launchers at once; end it with `finish`."""
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=stdout, stderr=stderr, text=True, start_new_session=True)


def finish(proc, timeout):
    """(returncode, stdout, stderr) of a process from `start`; on timeout everything it started is killed and
    subprocess.TimeoutExpired raised."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(proc.args, timeout, output=out, stderr=err) from None
    kill_tree(proc.pid)
    return proc.returncode, out, err


def torchrun_cli(nproc: int):
    """argv prefix that runs the `easyretrieval` CLI of this interpreter's environment as `nproc` ranks on this
    machine (torchrun, a free loopback port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = os.path.join(os.path.dirname(sys.executable), "easyretrieval")
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
            "127.0.0.1", "--master_port", str(port), "--no-python", script]
