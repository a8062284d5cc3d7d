"""The base class of an app and the run context the CLI hands it.

An app owns what is specific to a task: its parameter schema and how train / evaluate / predict build
the model, data and evaluator and pass them to the core engine.
"""
from dataclasses import dataclass
from typing import Optional

from easyretrieval.distributed import DistInfo
from easyretrieval.errors import UserError
from easyretrieval.parameters import Config, ParamSchema


@dataclass(frozen=True)
class RunContext:
    """What the CLI resolved besides the app parameters."""

    mode: str
    output_dir: str  # where this run writes (see easyretrieval.run_dir.mode_output_dir)
    seed: int = 42
    deepspeed_config: Optional[str] = None
    dist: DistInfo = DistInfo()
    given_output_dir: Optional[str] = None  # --output_dir as given, when the run writes into a subfolder of it


class App:
    """Subclass, set `schema`, and implement the modes the app supports."""

    schema: ParamSchema = ParamSchema([])
    modes = ("train", "evaluate", "predict")

    def __init__(self, config: Config, run: RunContext):
        self.config = config
        self.run = run

    def check(self):
        """Every check of the parameters that needs no data; the CLI calls it before anything is downloaded,
        written or started (process group, data preparation, model). Raise UserError on a problem."""

    @classmethod
    def complete_config(cls, config: Config) -> Config:
        """The resolved parameters an app derives from its inputs before the run (e.g. sizes a pretrained
        model describes), called on every rank before config.json is written; default: unchanged."""
        return config

    def train(self):
        raise UserError(f"this app has no train mode; modes: {', '.join(self.modes)}")

    def evaluate(self):
        raise UserError(f"this app has no evaluate mode; modes: {', '.join(self.modes)}")

    def predict(self):
        raise UserError(f"this app has no predict mode; modes: {', '.join(self.modes)}")
