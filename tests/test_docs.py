"""The README and docs/ stay true: every link, anchor, module, file and command they name exists."""

from __future__ import annotations

import contextlib
import io

import pytest

from dataflows.cli import main
from tests import ROOT
from tests.doc_links import COMMAND, FILE, MODULE, anchors, doc_files, links, module_exists, prose

DOCS = doc_files()


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_links_and_anchors_resolve(path):
    broken = []
    for target in links(path):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    assert not broken, f"{path.name}: " + "; ".join(broken)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_named_modules_and_files_exist(path):
    text = "\n".join(prose(path.read_text()))
    missing = [m for m in MODULE.findall(text) if not module_exists(m)]
    missing += [f for f in FILE.findall(text) if not (ROOT / f).exists()]
    assert not missing, f"{path.name} names modules or files that do not exist: {sorted(set(missing))}"


def test_named_commands_exist():
    named = {m for path in DOCS for m in COMMAND.findall(path.read_text())}
    assert ("run", "") in named or any(cmd == "run" for cmd, _ in named)
    unknown = []
    for command, sub in sorted(named):
        argv = [command, sub, "--help"] if sub and command in {"reference", "model", "samples", "expectations"} else [command, "--help"]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            with pytest.raises(SystemExit) as exit_:
                main(argv)
        if exit_.value.code != 0:
            unknown.append(" ".join(argv[:-1]))
    assert not unknown, f"the docs name `driftline` commands that do not exist: {unknown}"
