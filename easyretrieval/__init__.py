"""easyretrieval: the framework core (registry, parameters, CLI, engine, modelzoo).

The core never imports an app: apps plug in through the `easyretrieval.apps` entry-point group.
"""
from easyretrieval.errors import UserError
from easyretrieval.registry import Registry, register_app, register_command

__version__ = "0.1.0"

__all__ = ["Registry", "UserError", "register_app", "register_command", "__version__"]
