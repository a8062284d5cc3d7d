"""Names a package exports but imports only on first use (PEP 562), so that importing the package (the CLI
listing parameters, an app registering itself) does not pull in torch or the download machinery."""
import importlib
import sys
from typing import Callable, Dict, List, Tuple


def lazy_exports(package: str, exports: Dict[str, str]) -> Tuple[Callable[[str], object], List[str]]:
    """`(__getattr__, __all__)` for `package` (its `__name__`): `exports` maps each public name to the module
    that defines it. The first access imports that module and caches the name in the package; an unknown name
    raises AttributeError as a module attribute lookup does.

        __getattr__, __all__ = lazy_exports(__name__, {"resolve": "easyretrieval.modelzoo.resolver"})
    """
    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__, sorted(exports)
