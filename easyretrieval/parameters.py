"""Typed app parameters: the schema an app declares and the strict parser of `--user_defined_parameters`.

Accepted forms of user_defined_parameters:
  "k=v k2='a value with spaces' k3=x=y"   shell-style quoting; a value may contain '='
  '{"k": 1, "k2": "v"}'                     a JSON object
  "@params.json" / "@params.yaml"           a file holding one object
Every value is converted strictly to the declared type; unknown names get a did-you-mean.
"""
import json
import os
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from easyretrieval.errors import UserError, did_you_mean
from easyretrieval.text_input import read_text_file

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_NONE = {"none", "null"}


@dataclass(frozen=True)
class Param:
    """One parameter: name, type (bool, int, float or str), default, help and allowed values.

    `default_from=("vit", {"base": 32, "large": 16})` derives the default from another parameter's value
    (used only when the user did not set this one). `nullable` lets the value be None ("none"/"null").
    """

    name: str
    type: type
    default: Any = None
    help: str = ""
    choices: Optional[Tuple[Any, ...]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    default_from: Optional[Tuple[str, Mapping[Any, Any]]] = None
    nullable: bool = False

    def convert(self, value):
        """`value` (a string from the command line, or a JSON/YAML scalar) as this parameter's type."""
        if isinstance(value, str) and self.nullable and value.strip().lower() in _NONE:
            return None
        if value is None:
            if self.nullable:
                return None
            self._fail(value)
        converted = self._convert_type(value)
        if self.choices is not None and converted not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise UserError(
                f"parameter '{self.name}': '{value}' is not one of {allowed}{did_you_mean(value, self.choices)}"
            )
        if self.min is not None and converted < self.min:
            raise UserError(f"parameter '{self.name}': {converted} is below the minimum {self.min}")
        if self.max is not None and converted > self.max:
            raise UserError(f"parameter '{self.name}': {converted} is above the maximum {self.max}")
        return converted

    def _convert_type(self, value):
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
        elif self.type is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    pass
        elif self.type is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value.strip())
                except ValueError:
                    pass
        elif self.type is str:
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return str(value)
        self._fail(value)

    def _fail(self, value):
        hint = {bool: "true/false, 1/0 or yes/no", int: "an integer", float: "a number", str: "a string"}
        raise UserError(f"parameter '{self.name}': expected {hint[self.type]}, got '{value}'")


class Config(dict):
    """Resolved parameters: a dict with attribute access; `user_set` names what the user gave explicitly."""

    def __init__(self, values=(), user_set=()):
        super().__init__(values)
        self.user_set = frozenset(user_set)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self):
        return dict(self)


@dataclass
class ParamSchema:
    """The typed parameters of one app."""

    params: Sequence[Param]
    _by_name: Dict[str, Param] = field(init=False, repr=False)

    def __post_init__(self):
        self._by_name = {}
        for p in self.params:
            if p.name in self._by_name:
                raise ValueError(f"parameter '{p.name}' is declared twice")
            self._by_name[p.name] = p
        for p in self.params:
            if p.default_from is not None and p.default_from[0] not in self._by_name:
                raise ValueError(f"parameter '{p.name}' derives its default from unknown '{p.default_from[0]}'")

    def __contains__(self, name):
        return name in self._by_name

    def __getitem__(self, name):
        return self._by_name[name]

    def names(self):
        return [p.name for p in self.params]

    def resolve(self, raw: Mapping[str, Any]) -> Config:
        """Convert the user's values, reject unknown names, fill in defaults (derived ones last)."""
        values = {}
        for key, value in raw.items():
            if key not in self._by_name:
                raise UserError(
                    f"unknown parameter '{key}'{did_you_mean(key, self._by_name)}; "
                    "run with --help-params to list them"
                )
            values[key] = self._by_name[key].convert(value)
        user_set = set(values)
        for p in self.params:
            if p.name not in values and p.default_from is None:
                values[p.name] = p.default
        for p in self.params:
            if p.name not in values:
                source, table = p.default_from
                values[p.name] = table.get(values[source], p.default)
        return Config({p.name: values[p.name] for p in self.params}, user_set)

    def help_text(self):
        """Every parameter with its type, default and help, for --help-params."""
        lines = []
        width = max(len(p.name) for p in self.params)
        for p in self.params:
            default = repr(p.default)
            if p.default_from is not None:
                source, table = p.default_from
                default = "; ".join(f"{k}: {v!r}" for k, v in table.items()) + f" (by {source})"
            allowed = ""
            if p.choices is not None:
                allowed = " one of: " + ", ".join(str(c) for c in p.choices) + "."
            elif p.min is not None or p.max is not None:
                allowed = f" range: [{'' if p.min is None else p.min}, {'' if p.max is None else p.max}]."
            lines.append(f"  {p.name:<{width}}  {p.type.__name__:<5}  default {default}. {p.help}{allowed}")
        return "\n".join(lines)


def parse_user_defined_parameters(text: Optional[str]) -> Dict[str, Any]:
    """Raw name -> value pairs from one of the three accepted forms (values not yet converted)."""
    if text is None or not text.strip():
        return {}
    text = text.strip()
    if text.startswith("@"):
        return _read_parameter_file(text[1:])
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"user_defined_parameters: invalid JSON object ({e.msg} at char {e.pos})") from None
        return _check_mapping(obj, "user_defined_parameters")
    try:
        tokens = shlex.split(text)
    except ValueError as e:
        raise UserError(f"user_defined_parameters: {e} (check the quotes)") from None
    result = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise UserError(f"user_defined_parameters: '{token}' is not of the form name=value")
        if key in result:
            raise UserError(f"user_defined_parameters: '{key}' is given twice")
        result[key] = value
    return result


def _read_parameter_file(path):
    if not os.path.isfile(path):
        raise UserError(f"user_defined_parameters: file '{path}' not found")
    content = read_text_file(path, "user_defined_parameters file")
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            obj = yaml.safe_load(content)
        except yaml.YAMLError as e:
            raise UserError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    else:
        try:
            obj = json.loads(content)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    return _check_mapping(obj or {}, path)


def _check_mapping(obj, where):
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected an object of name: value pairs, got {type(obj).__name__}")
    for key, value in obj.items():
        if isinstance(value, (dict, list)):
            raise UserError(f"{where}: parameter '{key}' must be a single value, not a {type(value).__name__}")
    return dict(obj)
