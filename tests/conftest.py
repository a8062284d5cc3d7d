"""The test tree's root. pytest puts this folder on sys.path (its conftest.py is imported first), so helpers
shared by tests in several folders live here: process_launch.py (subprocesses that never outlive a test).
benchmarks/ joins it: its official_reference.py (official BLIP's evaluation loop re-implemented, the baseline of
the benchmarks) is what the evaluator tests compare with."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
