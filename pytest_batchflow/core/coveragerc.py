"""A coverage.py configuration file written from settings already read.

coverage.py hands a ``multiprocessing`` child the path of a configuration
file, and nothing else: the child reads its settings from that file alone.
For the children of a measured process to write where that process writes
and measure what it measures, batchflow writes the user's settings, with its
own data file and sources, into a file of its own (:func:`rcfile_text`).

The values are the ones coverage.py read (lists already split, regular
expressions already checked), so they are written back in the form coverage.py
reads them from a ``.coveragerc``: every value goes through its ``$VAR``
substitution again, so a ``$`` is doubled; list items go one a line; a line
of a value that starts with ``#`` or ``;`` would be a comment, so a regular
expression starting so is escaped (``\\#`` matches what ``#`` does), and any
other such item is refused, as is a comma in an item of a list that is not
of regular expressions (coverage.py splits those at commas too). No
coverage.py or pytest import here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

__all__ = ["rcfile_text"]

_COMMENT_PREFIXES = ("#", ";")


def _scalar(value: object, where: str) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        raise ValueError(f"{where}: {value!r} cannot be written to a configuration file")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{where}: a value of several lines ({text!r}) cannot be written")
    return text.replace("$", "$$")


def _item(value: object, where: str, regex: bool) -> str:
    text = _scalar(value, where).strip()
    if "," in text and not regex:
        raise ValueError(f"{where}: {value!r} would be read as several items (a comma)")
    if text.startswith(_COMMENT_PREFIXES):
        if not regex:
            raise ValueError(f"{where}: {value!r} would be read as a comment")
        return "\\" + text
    return text


def _value_lines(value: object, where: str, regex: bool) -> list[str]:
    """The value's lines: its text, or for a list an empty first line and one per item."""
    if isinstance(value, (list, tuple)):
        return ["", *(_item(item, where, regex) for item in value)]
    return [_scalar(value, where)]


def rcfile_text(
    sections: Mapping[str, Mapping[str, object]], regex_options: Collection[str] = ()
) -> str:
    """The text of a ``.coveragerc`` holding these settings.

    ``sections`` maps a section name (``run``, ``report``, ``paths``, a
    plugin's name) to its options and their values; a None value is left out
    (coverage.py's default applies). ``regex_options`` names, as
    ``section:option``, the lists whose items are regular expressions.
    Raises ValueError naming the setting whose value cannot be written.
    """
    lines: list[str] = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        for option, value in options.items():
            if value is None:
                continue
            where = f"{section}:{option}"
            first, *rest = _value_lines(value, where, where in regex_options)
            lines.append(f"{option} = {first}".rstrip())
            lines.extend(f"    {item}" for item in rest)
        lines.append("")
    return "\n".join(lines)
