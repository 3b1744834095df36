"""Sphinx configuration for rl_repr's API reference (``make docs``).

Sphinx with autodoc and napoleon, because our docstrings are reStructuredText: ``code``
literals, formulas and shapes in ``::`` literal blocks, Google-style Args/Returns/Raises
sections. Sphinx renders all three as written (napoleon turns the sections into field lists);
Markdown-based generators (mkdocstrings, pdoc's default) would reflow the ``::`` blocks.
Where a docstring indents a formula under its sentence without ``::``, the hook at the end
(``preformat_indented_blocks``) shows it as a literal block too.

The pages are generated on every build, so a new module or method package appears without
editing anything here: ``api/<package>.rst`` holds one ``automodule`` per module of each
folder of ``rl_repr/``, and ``guides/<section>.md`` is one page per ``## `` section of the
README. Generated files live under ``api/`` and ``guides/`` and are not committed.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import rl_repr  # noqa: E402  (after the path: build from the checkout)

project = "rl_repr"
release = version = rl_repr.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
# Literal blocks are mostly formulas and shapes, which a Python highlighter would colour as
# strings and operators; examples stay readable uncoloured.
highlight_language = "none"
html_title = f"rl_repr {version}"
html_show_copyright = False

# A name is documented once, in the module that defines it (not where it is re-exported).
autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": True,
                           "ignore-module-all": True}
autodoc_preserve_defaults = True  # show ``dtype=jnp.float32``, not the evaluated object
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as a field list: no second description of each field
myst_heading_anchors = 3
# A short name in a docstring (``dtype``, ``ConfigError``) that several classes define links to
# one of them; Sphinx would warn about each such choice.
suppress_warnings = ["ref.python"]

# Reading order of the API pages; packages not listed follow in alphabetical order.
PACKAGE_ORDER = ["rl_repr.losses", "rl_repr.norms", "rl_repr.models", "rl_repr.data", "rl_repr.data.images",
                 "rl_repr.data.text", "rl_repr.evaluation", "rl_repr.simclr", "rl_repr.moco",
                 "rl_repr.metric_learning", "rl_repr.word2vec"]
PACKAGE_LAST = ["rl_repr.sweeps", "rl_repr.core", "rl_repr"]


def _write_if_changed(path: pathlib.Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _replace_folder(folder: pathlib.Path, pages: dict[str, str]) -> None:
    """``folder`` holds exactly ``pages`` (name -> text) afterwards; unchanged files keep their time."""
    folder.mkdir(exist_ok=True)
    for stale in set(os.listdir(folder)) - set(pages):
        (folder / stale).unlink()
    for name, text in pages.items():
        _write_if_changed(folder / name, text)


def _heading(title: str, mark: str) -> str:
    return f"{title}\n{mark * len(title)}\n"


def api_pages() -> dict[str, str]:
    """``{file name: reST}``: one page per folder of rl_repr/, one ``automodule`` per module."""
    source = ROOT / "rl_repr"
    folders: dict[str, list[str]] = {}
    for path in sorted(source.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1].startswith("_") and parts[-1] != "__init__":
            continue  # private modules: their public entry points are documented
        package = ".".join(parts[:-1])
        folders.setdefault(package, []).append(".".join(parts))
    order = [p for p in PACKAGE_ORDER if p in folders]
    order += sorted(set(folders) - set(order) - set(PACKAGE_LAST)) + [p for p in PACKAGE_LAST if p in folders]
    pages = {}
    for package in order:
        modules = folders[package]
        init = f"{package}.__init__"
        if package == "rl_repr.data" and modules == [init]:
            continue  # only a docstring pointing at data.images and data.text
        title = package if package != "rl_repr" else "rl_repr (entry points)"
        lines = [_heading(title, "="), ""]
        if init in modules:
            # The package docstring; its re-exported names are documented with their modules.
            lines += [f".. automodule:: {package}", "   :no-members:", ""]
        for module in (m for m in modules if m != init):
            lines += [_heading(module, "-"), f".. automodule:: {module}", ""]
        pages[package.removeprefix("rl_repr.").replace(".", "_") + ".rst"] = "\n".join(lines)
    return pages


_RELATIVE_LINK = re.compile(r"\[([^\]]+)\]\((?!https?:|#|mailto:)([^)]+)\)")


def _promote_headings(markdown: str) -> str:
    """``### x`` -> ``## x`` outside fenced code blocks (where ``#`` starts a comment)."""
    lines, fenced = [], False
    for line in markdown.split("\n"):
        fenced ^= line.startswith("```")
        lines.append(line[1:] if not fenced and re.match(r"##+ ", line) else line)
    return "\n".join(lines)


def guide_pages(readme: str) -> dict[str, str]:
    """``{file name: Markdown}``: the README's introduction and each of its ``## `` sections.

    Headings move up one level (each section is a page); links to files of the repository
    become their path in code, since the files are not part of the site.
    """
    readme = _RELATIVE_LINK.sub(lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)} ({m.group(2)})",
                                readme)
    chunks = re.split(r"^## ", readme, flags=re.MULTILINE)
    pages = {"00-introduction.md": "# Introduction\n" + chunks[0].split("\n", 1)[1]}
    sections = [chunk.split("\n", 1) for chunk in chunks[1:]]
    sections = [(title, body) for title, body in sections if title.strip().lower() != "changelog"]  # own page
    for number, (title, body) in enumerate(sections, start=1):
        body = _promote_headings(body)
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        pages[f"{number:02d}-{slug}.md"] = f"# {title.strip()}\n{body}"
    return pages


def _toctree(caption: str, folder: str, names) -> str:
    entries = "\n".join(f"   {folder}/{pathlib.Path(n).stem}" for n in sorted(names))
    return f".. toctree::\n   :caption: {caption}\n   :maxdepth: 1\n\n{entries}\n"


_api = api_pages()
_guides = guide_pages((ROOT / "README.md").read_text())
_replace_folder(DOCS / "api", _api)
_replace_folder(DOCS / "guides", _guides)
_api_order = list(_api)  # reading order, not alphabetical
_write_if_changed(DOCS / "contents.rst.inc", "\n".join([
    _toctree("Guides (the README)", "guides", _guides),
    ".. toctree::\n   :caption: API reference\n   :maxdepth: 1\n\n"
    + "\n".join(f"   api/{pathlib.Path(n).stem}" for n in _api_order) + "\n",
    ".. toctree::\n   :caption: Project\n   :maxdepth: 1\n\n   changelog\n",
]))


# ------------------------------------------------------------------ our docstrings' plain text
# Docstrings here write formulas and shapes as indented plain text under the sentence that
# introduces them, with or without a blank line and with or without "::". reST would read such
# a block as a definition list or a quotation (and ``|x|`` as a substitution); these two
# rules render it as written. Everything else is plain reST + napoleon.
_LIST_ITEM = re.compile(r"\s*([-*+]|\d+[.)]|#\.)\s")
_SUBSTITUTION = re.compile(r"(?<![\\\w`])\|(?=[^\s|])([^|`\n]*?[^\s|\\])\|(?![\w|])")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape_bars(line: str) -> str:
    """``|x|`` (an absolute value, not a substitution) outside ````literals````."""
    parts = line.split("``")
    parts[::2] = [_SUBSTITUTION.sub(r"\\|\1\\|", part) for part in parts[::2]]
    return "``".join(parts)


def preformat_indented_blocks(lines: list[str]) -> list[str]:
    """A more indented block under a line of prose becomes a literal block."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        following = next((j for j in range(i + 1, len(lines)) if lines[j].strip()), None)
        prose = line.strip() and not line.lstrip().startswith((":", "..")) and not _LIST_ITEM.match(line)
        if not prose or following is None or _indent(lines[following]) <= _indent(line):
            out.append(_escape_bars(line) if prose else line)
            if prose and i + 1 < len(lines) and _LIST_ITEM.match(lines[i + 1]):
                out.append("")  # a list right under a sentence needs a blank line first
            i += 1
            continue
        if line.rstrip().endswith("::"):
            out += [_escape_bars(line), ""]
        elif line.rstrip().endswith(":"):
            out += [_escape_bars(line.rstrip()) + ":", ""]
        else:
            out += [_escape_bars(line), "", "::", ""]
        # The block verbatim, then a blank line where the text comes back.
        j = following
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > _indent(line)):
            out.append(lines[j])
            j += 1
        while out and not out[-1].strip():
            out.pop()
        out.append("")
        i = j
    return out


def _process_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = preformat_indented_blocks(lines)


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring)
