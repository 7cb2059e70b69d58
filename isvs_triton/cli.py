"""Command lines over settings dataclasses (``TrainConfig``, ``EvalConfig``): one flag per field, its help the comment
beside the field, one group per section comment (``# data``, ``# model``, ...), the accepted values listed, and the
defaults the command runs with (a recipe's over the dataclass's) shown. One place documents a setting."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def default(f: dataclasses.Field):
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


def documented_fields(cls) -> dict[str, tuple[str, str]]:
    """Each field's comment and the section it stands in, read from the class's source."""
    documented, section = {}, ""
    for line in inspect.getsource(cls).splitlines():
        heading = re.fullmatch(r"    # (\w[\w ]*)", line)
        field_line = re.fullmatch(r"    (\w+): [^#\n]*#\s*(.*)", line)
        if heading:
            section = heading.group(1)
        elif field_line:
            documented[field_line.group(1)] = (field_line.group(2), section)
    return documented


def comma_list(kind):
    """An argparse type: comma-separated values of ``kind`` ('' is the empty list)."""

    def parse(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None

    parse.__name__ = f"list of {kind.__name__}"
    return parse


_SCALARS = {"int": int, "float": float, "str": str}


def add_fields(parser: argparse.ArgumentParser, cls, shown: dict | None = None, accepted: dict | None = None,
               special: dict | None = None) -> None:  # fmt: skip
    """A flag for every field of ``cls``, grouped by section. ``shown``: the defaults to print (the dataclass's by
    default); ``accepted``: the values a field takes, listed in its help; ``special``: add_argument keywords that
    replace the ones read off a field's annotation."""
    shown = {**{f.name: default(f) for f in dataclasses.fields(cls)}, **(shown or {})}
    accepted, special, groups = accepted or {}, special or {}, {}
    documented = documented_fields(cls)
    for f in dataclasses.fields(cls):
        text, section = documented[f.name]
        group = groups.get(section) or groups.setdefault(section, parser.add_argument_group(section or None))
        value = shown[f.name]
        listed = [str(v) for v in accepted.get(f.name, []) if v is not None]
        if isinstance(value, (list, tuple)):
            value = "all" if listed and [str(v) for v in value] == listed else ",".join(map(str, value))
        text += f" {{{', '.join(listed)}}}" if listed else ""
        text += f" (default: {value})" if value is not None else ""  # the comment says what None means
        kind = f.type.removesuffix(" | None")
        options = {"help": text}
        if kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        elif kind.startswith(("list[", "tuple[")):
            item = re.search(r"\[(\w+)", kind).group(1)
            options.update(type=comma_list(_SCALARS[item]), metavar=f"{f.name.upper()},...")
        else:
            options.update(type=_SCALARS.get(kind, str), metavar=f.name.upper())
        options.update(special.get(f.name, {}))
        group.add_argument(*options.pop("names", [flag(f.name)]), **options)
