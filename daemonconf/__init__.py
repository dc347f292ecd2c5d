"""A daemon's YAML config file as the defaults of its command line: `vsd serve`, `vsc run` and
`vrs run` each take `--config FILE` (`/etc/vsplab/*.yaml` under systemd), whose keys are the long
options of that subcommand (`of_port` or `of-port` for `--of-port`); a flag given as well wins (for a
repeatable option, such as `bgp_peer`, the flags add to the file's list). A key
the subcommand does not know, a value of the wrong type or a file that is not a mapping ends the
daemon with exit status 2 and a message naming the file, the key and its line.

Beneath every tier (it imports none), so the three daemons share one reading of their config files.
`journal_logging` is the other half of running under systemd: log lines the journal files by priority."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A config file the daemon cannot start from: the message names the file, the key and its line."""


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The subcommand's long options by their config key (the dest: `of_port`)."""
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}


def _value(path: str, line: int, key: str, action: argparse.Action, value):
    where = f"{path} line {line}: {key}"
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_scalar(where, action, v) for v in items]
    if isinstance(value, list):
        # a list where the option takes one value: the comma-joined form the flag takes (`--vsd A,B`)
        value = ",".join(str(v) for v in value)
    return _scalar(where, action, value)


def _scalar(where: str, action: argparse.Action, value):
    if isinstance(value, dict | list) or value is None:
        raise ConfigError(f"{where}: expected a single value, got {value!r}")
    if action.type is not None:
        try:
            # as the flag's text, so a type such as `int(s, 0)` reads YAML's 5 as it reads "5"
            return action.type(str(value).lower() if isinstance(value, bool) else str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            kind = getattr(action.type, "__name__", "<lambda>")
            raise ConfigError(f"{where}: {value!r} is not a valid "
                              f"{'value' if kind.startswith('<') else kind}") from None
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if action.choices is not None and text not in action.choices:
        raise ConfigError(f"{where}: {text!r} is not one of {', '.join(map(str, action.choices))}")
    return text


def read_config(path: str, parser: argparse.ArgumentParser) -> dict:
    """The file's options as {dest: value}, typed and checked as the flags would be."""
    try:
        text = Path(path).read_text()
        root = yaml.compose(text)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not YAML: {e}") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path} line {root.start_mark.line + 1}: expected a mapping of options")
    known = _options(parser)
    out: dict = {}
    lines: dict[str, int] = {}
    for key_node, _ in root.value:
        key, line = str(key_node.value), key_node.start_mark.line + 1
        dest = key.replace("-", "_")
        if dest not in known:
            raise ConfigError(f"{path} line {line}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        if dest in lines:
            raise ConfigError(f"{path} line {line}: {key} given twice (first on line {lines[dest]})")
        lines[dest] = line
    # no key twice, so the loaded mapping holds the nodes' keys in the same order
    for (dest, line), (key, value) in zip(lines.items(), yaml.safe_load(text).items(), strict=True):
        out[dest] = _value(path, line, str(key), known[dest], value)
    return out


def parse_with_config(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse `argv`; where the chosen subcommand (one given `mark_subparser`) was given `--config FILE`,
    the file's options become its defaults and the command line is parsed again, so flags win. A bad
    file exits 2 with the message on stderr, as a bad flag does."""
    args = parser.parse_args(argv)
    sub = getattr(args, "_subparser", None)
    if sub is None or not args.config:
        return args
    try:
        values = read_config(args.config, sub)
    except ConfigError as e:
        print(f"{sub.prog}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    sub.set_defaults(**values)
    return parser.parse_args(argv)


def mark_subparser(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Let `parse_with_config` tell which subcommand was chosen, and give it `--config`."""
    sub.set_defaults(_subparser=sub)
    sub.add_argument("--config", metavar="FILE",
                     help="YAML file of these options (keys as the long flags, e.g. of_port); flags win")
    return sub


# journald reads a "<N>" prefix as the line's syslog priority (SyslogLevelPrefix=, on by default)
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).splitlines())


def under_journal() -> bool:
    """Whether stderr is the journal's stream (systemd sets JOURNAL_STREAM to its device:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def journal_logging(level: str = "INFO", log_file: str | None = None) -> None:
    """Root logging to stderr: under the journal without timestamps (it stamps every line) and with
    each line's priority; elsewhere with a timestamp. `log_file` writes there instead."""
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    if not log_file and under_journal():
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
