"""Loader processes and the end of a run: a SIGTERM sent to the whole process group (a terminal, SLURM) does not
kill them (the training process saves first, then stops them), but the process that started them can always end
them, so a process never hangs at exit on a loader left running (multiprocessing's exit handler SIGTERMs its
daemonic children and then waits for them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import multiprocessing, sys
    import torch
    from lit_gans.data.resumable_loader import ResumableDataLoader

    loader = ResumableDataLoader(torch.arange(64), batch_size=4, num_workers=2)
    batches = iter(loader)
    first, second = next(batches), next(batches)  # one batch from each worker: both have started (and set up)
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    sys.stdin.readline()  # meanwhile the test sends SIGTERM to the workers from outside
    print(2 + sum(1 for _ in batches), flush=True)
    LEFT_RUNNING = iter(loader)  # an iterator still referenced at exit, as an exception's traceback keeps one
    next(LEFT_RUNNING)
    multiprocessing.util.get_logger()  # moves multiprocessing's exit handler to the end of the queue
""")


@pytest.mark.skipif(not hasattr(signal, "sigwaitinfo"), reason="the sender of a signal is known on Linux only")
def test_workers_survive_an_outside_sigterm_and_the_process_still_exits():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2
        for pid in workers:
            os.kill(pid, signal.SIGTERM)  # not from their parent: ignored
        time.sleep(0.5)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "16"  # every batch of the epoch arrived
        started = time.monotonic()
        assert proc.wait(timeout=30) == 0, proc.stderr.read()[-2000:]
        assert time.monotonic() - started < 10
    finally:
        proc.kill()
