"""Name -> plugin registries for apps, models, datasets, evaluators and CLI commands.

Registration happens when a module is imported (decorators). Apps from other packages are found through
the entry-point group `easyretrieval.apps` and imported only when first asked for.
"""
from importlib import metadata

from easyretrieval.errors import UserError, did_you_mean

APP_ENTRY_POINT_GROUP = "easyretrieval.apps"


class Registry:
    """A mapping from names to objects of one kind; duplicates are an error, typos get a did-you-mean."""

    def __init__(self, kind):
        self.kind = kind
        self._items = {}

    def register(self, name=None):
        """Decorator: `@REG.register("name")` or `@REG.register()` (uses the object's __name__)."""

        def decorator(obj):
            key = name or obj.__name__
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} '{key}' is already registered by {self._items[key]!r}")
            self._items[key] = obj
            return obj

        return decorator

    def get(self, name):
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise UserError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._items)}; known: {known}")
        return self._items[name]

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items


APPS = Registry("app")
MODELS = Registry("model")
DATASETS = Registry("dataset")
EVALUATORS = Registry("evaluator")
COMMANDS = Registry("command")

COMMAND_HELP = {}  # command name -> its one-line description (for `easyretrieval --help`)

register_app = APPS.register
register_model = MODELS.register
register_dataset = DATASETS.register
register_evaluator = EVALUATORS.register


def register_command(name=None, help=""):  # noqa: A002 - argparse's word for it
    """Decorator: register a sub-command `fn(argv) -> exit code` with a one-line description."""
    decorator = COMMANDS.register(name)

    def register(fn):
        key = name or fn.__name__
        COMMAND_HELP[key] = help
        return decorator(fn)

    return register


def _app_entry_points():
    return {ep.name: ep for ep in metadata.entry_points(group=APP_ENTRY_POINT_GROUP)}


def available_apps():
    """Names of every app: registered in this process or advertised by an installed package."""
    return sorted(set(APPS.names()) | set(_app_entry_points()))


def get_app(name):
    """The app class registered as `name`, importing its package through its entry point if needed."""
    if name not in APPS:
        entry_point = _app_entry_points().get(name)
        if entry_point is not None:
            obj = entry_point.load()
            if name not in APPS:  # an entry point may name the class directly without a decorator
                APPS.register(name)(obj)
    if name not in APPS:
        known = available_apps()
        raise UserError(f"unknown app '{name}'{did_you_mean(name, known)}; known: {', '.join(known) or 'none'}")
    return APPS.get(name)


def load_all_apps():
    """Import every advertised app (so that the commands they register become available)."""
    for name in _app_entry_points():
        get_app(name)
