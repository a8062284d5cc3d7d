"""The app-agnostic training engine: DeepSpeed config, schedule, checkpoints, trainer loop and export.

Apps describe their work with a `TrainTask` (easyretrieval.engine.task) and run it with `Trainer`.
DeepSpeed itself is imported only when an engine is built.
"""
