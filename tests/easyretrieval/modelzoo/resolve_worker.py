"""Run by torchrun in test_concurrency.py: resolve argv[1] and print where it went and its sha256."""
import hashlib
import os
import sys

from easyretrieval.modelzoo import resolve

if __name__ == "__main__":
    path = resolve(sys.argv[1], progress=False)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    # one write: torchrun runs ranks unbuffered (-u), where print's text and newline are two writes that
    # another rank's line can fall between
    sys.stdout.write(f"RESOLVED node={os.environ.get('GROUP_RANK')} rank={os.environ.get('RANK')} {digest} {path}\n")
    sys.stdout.flush()
