# The two commands of the README. Both set up everything they need on a fresh machine.
SHELL := /bin/bash

.PHONY: demo test

# Train + evaluate a tiny BLIP on the built-in synthetic dataset (DeepSpeed engine, CPU or GPU); prints recall.
demo:
	@venv=$$(bash scripts/bootstrap.sh) && bash examples/run_demo.sh "$$venv"

# The test suite (pytest exits non-zero when no test ran, so CI cannot pass silently).
test:
	@venv=$$(bash scripts/bootstrap.sh) && "$$venv/bin/python" -m pytest tests -q -p no:cacheprovider
