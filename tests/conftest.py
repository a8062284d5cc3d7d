"""The test tree's root. pytest puts this folder on sys.path (its conftest.py is imported first), so helpers
shared by tests in several folders live here: process_launch.py (subprocesses that never outlive a test)."""
