"""Generate the documentation that is derived from code or from saved runs.

    python -m benchmarks.docs cli        # docs/cli.md from the Typer app
    python -m benchmarks.docs figures    # every figure table in README.md and docs/
    python -m benchmarks.docs check      # exit 1 when either is out of date

The CLI reference is rendered from the click command tree Typer builds, so it lists
exactly the commands and options `clipdex --help` shows. Figure tables live between
`<!-- figures:NAME -->` and `<!-- /figures -->` markers and are rendered from the
JSON files in `benchmarks/results/` by `benchmarks.figures`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = ROOT / "docs" / "cli.md"

_HEADER = """# CLI reference

Generated from the Typer app by `python -m benchmarks.docs cli`; do not edit by hand
(`tests/test_docs.py` checks that this file is current). Every command also takes
`--help`.
"""


def _wrap(text: str, indent: str = "") -> list[str]:
    """Text re-flowed to 88 columns; backquoted spans are never broken."""
    import textwrap

    return textwrap.wrap(" ".join(text.split()), width=88, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def _type_name(param) -> str:
    """The value type of an option, from its annotation: int, float, text, path, or choices."""
    import enum
    import pathlib
    import typing

    annotation = param.type_descriptor.annotation
    while typing.get_args(annotation):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "|".join(str(m.value) for m in annotation)
    names = {int: "integer", float: "number", str: "text", bool: "flag"}
    if isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath):
        return "path"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)).lower())


def _param_line(param) -> str:
    """One bullet for an option or argument: its spelling, type, default and help."""
    if param.param_type_name == "argument":
        name = (param.metavar or param.name).upper()
        kind = "argument" + ("" if param.required else ", optional")
        if getattr(param, "nargs", 1) == -1:
            kind += ", repeatable"
        text = f"- `{name}` ({kind})"
        help_text = getattr(param, "help", None)
    else:
        spellings = ", ".join(param.opts + param.secondary_opts)
        kind = "flag" if param.is_flag else _type_name(param)
        extras = [kind]
        if param.required:
            extras.append("required")
        if param.multiple:
            extras.append("repeatable")
        default = param.default
        if (not param.required and default not in (None, (), [], False, "")
                and not callable(default) and not param.is_flag):
            extras.append(f"default {default}")
        if param.envvar:
            extras.append(f"env {param.envvar}")
        text = f"- `{spellings}` ({', '.join(extras)})"
        help_text = param.help
    if help_text:
        text += ": " + " ".join(help_text.split())
    return text


def _command_section(path: list[str], command, level: int) -> list[str]:
    lines = [f"{'#' * level} `clipdex {' '.join(path)}`".rstrip(), ""]
    for paragraph in (command.help or "").strip().split("\n\n"):
        if paragraph.strip():
            lines += _wrap(paragraph) + [""]
    params = [p for p in command.params if p.name != "help" and not getattr(p, "hidden", False)]
    if params:
        for param in params:
            lines += _wrap(_param_line(param), indent="  ")
        lines.append("")
    if hasattr(command, "list_commands"):
        ctx = _context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            lines += _command_section(path + [name], sub, min(level + 1, 4))
    return lines


def _context(command):
    """A context for listing a group's commands (Typer's own click, not the installed one)."""
    return command.context_class(command)


def render_cli() -> str:
    """Markdown for every command of the `clipdex` app, in the order `--help` lists them."""
    import typer

    from engine.surfaces.cli import app

    root = typer.main.get_command(app)
    lines = [_HEADER]
    ctx = _context(root)
    names = root.list_commands(ctx)
    lines += _wrap("Commands: " + ", ".join(f"`{n}`" for n in names) + ".")
    lines.append("")
    for name in names:
        sub = root.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        lines += _command_section([name], sub, 2)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    what = args[0] if args else "all"
    if what not in {"cli", "figures", "all", "check"}:
        print("usage: python -m benchmarks.docs [cli|figures|all|check]", file=sys.stderr)
        return 2
    stale: list[str] = []
    if what in {"cli", "all", "check"}:
        text = render_cli()
        if what == "check":
            if not CLI_DOC.exists() or CLI_DOC.read_text() != text:
                stale.append(str(CLI_DOC.relative_to(ROOT)))
        else:
            CLI_DOC.parent.mkdir(exist_ok=True)
            CLI_DOC.write_text(text)
            print(f"wrote {CLI_DOC.relative_to(ROOT)}")
    if what in {"figures", "all", "check"}:
        from benchmarks import figures

        changed = figures.render_all(write=what != "check")
        if what == "check":
            stale += changed
        else:
            for path in changed:
                print(f"updated {path}")
    if stale:
        print("out of date (run `python -m benchmarks.docs`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
