"""What a setting's value may be: one small check per kind of value.

A check takes a value as TOML gives it (or as parsed from an environment variable's text,
`from_text`) and returns it normalised, or raises `Invalid` with what was expected. The
loader turns that into a message naming the setting, the value and the expectation.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Check",
    "Choice",
    "Flag",
    "Invalid",
    "Number",
    "Table",
    "Text",
    "Texts",
    "show_value",
]


class Invalid(ValueError):
    """The value does not fit; `expected` says what would."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def show_value(value: object) -> str:
    """A value as it would be written in the TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {show_value(v)}"
                                for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    return repr(value)


class Check:
    expected = "a value"

    def __call__(self, value: object) -> Any:
        raise NotImplementedError

    def from_text(self, text: str) -> object:
        """An environment variable's text as the value it stands for."""
        return text


@dataclass(frozen=True, slots=True)
class Number(Check):
    minimum: float = 0
    maximum: float | None = None
    integer: bool = False
    unit: str = ""

    @property
    def expected(self) -> str:  # type: ignore[override]
        what = "an integer" if self.integer else "a number"
        if self.unit:
            what += f" of {self.unit}"
        if self.maximum is not None:
            return f"{what} from {self.minimum:g} to {self.maximum:g}"
        return f"{what}, {self.minimum:g} or more"

    def __call__(self, value: object) -> int | float:
        ok_type = int if self.integer else int | float
        if isinstance(value, bool) or not isinstance(value, ok_type):
            raise Invalid(self.expected)
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            raise Invalid(self.expected)
        return value if self.integer else float(value)

    def from_text(self, text: str) -> object:
        try:
            return int(text) if self.integer else float(text)
        except ValueError:
            return text  # refused by __call__, with the text shown


@dataclass(frozen=True, slots=True)
class Flag(Check):
    expected = "true or false"

    def __call__(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise Invalid(self.expected)
        return value

    def from_text(self, text: str) -> object:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return text


@dataclass(frozen=True, slots=True)
class Text(Check):
    what: str = "a non-empty string"
    prefixes: tuple[str, ...] = ()

    @property
    def expected(self) -> str:  # type: ignore[override]
        return self.what

    def __call__(self, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Invalid(self.expected)
        if self.prefixes and not value.startswith(self.prefixes):
            raise Invalid(self.expected)
        return value


@dataclass(frozen=True, slots=True)
class Choice(Check):
    options: tuple[str, ...]

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(json.dumps(o) for o in self.options)

    def __call__(self, value: object) -> str:
        if value not in self.options:
            raise Invalid(self.expected)
        assert isinstance(value, str)
        return value


def _toml_value(text: str) -> object:
    try:
        return tomllib.loads("v = " + text)["v"]
    except tomllib.TOMLDecodeError:
        return text


@dataclass(frozen=True, slots=True)
class Texts(Check):
    """A list of strings: a TOML array, or in the environment also comma-separated."""

    allow_empty: bool = True

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "a list of strings" if self.allow_empty else "a non-empty list of strings"

    def __call__(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, str) and v for v in value
        ):
            raise Invalid(self.expected)
        if not value and not self.allow_empty:
            raise Invalid(self.expected)
        return tuple(value)

    def from_text(self, text: str) -> object:
        if text.lstrip().startswith("["):
            return _toml_value(text)
        return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True, slots=True)
class Table(Check):
    """A table of names to strings (or to lists of strings); in the environment, a TOML
    inline table: `{ fast = "smollm2" }`."""

    of: Check

    @property
    def expected(self) -> str:  # type: ignore[override]
        inner = "strings" if isinstance(self.of, Text) else "lists of strings"
        return f"a table of names to {inner}"

    def __call__(self, value: object) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Invalid(self.expected)
        try:
            return {str(k): self.of(v) for k, v in value.items()}
        except Invalid:
            raise Invalid(self.expected) from None

    def from_text(self, text: str) -> object:
        return _toml_value(text)
