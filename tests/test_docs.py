"""The README and the guides under docs/: the site builds in strict mode (no broken link, no page left out of the
navigation), every `edgeclf` command a code block shows exists with the options it shows, every `make` target
exists, and the README stays short enough to read."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from edgeclf.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"^\s*```(bash|sh|console|shell)\s*$")
FENCE = re.compile(r"^\s*```")
README_WORDS = 1500


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_in_strict_mode(tmp_path):
    built = _mkdocs(ROOT / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "reports" / "index.html").is_file()


def test_a_page_left_out_of_the_navigation_or_a_broken_link_fails_the_build(tmp_path):
    """The strict build is a real check: the same site with one orphan page, or one dead link, does not build."""
    for name, text in (("orphan.md", "# Not in the nav\n"), ("index.md", None)):
        copy = tmp_path / name.replace(".md", "")
        shutil.copytree(ROOT / "docs", copy / "docs")
        shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
        page = copy / "docs" / name
        page.write_text(text if text is not None else page.read_text() + "\n[gone](no-such-page.md)\n")
        built = _mkdocs(copy / "mkdocs.yml", copy / "site")
        assert built.returncode != 0, name
        assert ("orphan.md" in built.stderr) if text else ("no-such-page.md" in built.stderr)


def _shell_lines(page: Path) -> list[tuple[int, str]]:
    """(line number, command line) of every ```bash/```sh/```console block (in a console block only the `$ ` lines),
    continuations joined."""
    lines, inside, console, pending = [], False, False, ""
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if not inside:
            match = SHELL_BLOCK.match(line)
            inside, console = bool(match), bool(match) and match.group(1) == "console"
            continue
        if FENCE.match(line):
            inside = False
            continue
        text = line.strip()
        if console and not pending and not text.startswith("$ "):
            continue  # a console block's output lines
        if text.startswith("$ "):
            text = text[2:]
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        lines.append((number, pending + text))
        pending = ""
    return lines


def _commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line: split at ;, &&, || and |, redirections dropped."""
    tokens = shlex.split(line, comments=True)
    commands, current, skip = [], [], False
    for token in tokens:
        if skip:
            skip = False
        elif token in ("&&", "||", "|", ";"):
            commands.append(current)
            current = []
        elif re.fullmatch(r"\d?[<>]{1,2}", token):
            skip = True  # the file a redirection names
        elif re.match(r"\d?[<>]", token):
            continue
        else:
            current.append(token)
    return [c for c in commands + [current] if c]


def _option_names(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts + param.secondary_opts)
    return names


def check_edgeclf(args: list[str]) -> list[str]:
    """What is wrong with `edgeclf ARGS` against the CLI: unknown subcommands and options each command rejects."""
    command: click.Command = cli
    path = ["edgeclf"]
    problems = []
    i = 0
    while isinstance(command, click.Group):
        while i < len(args) and args[i].startswith("-") and args[i].split("=")[0] in _option_names(command):
            i += 1
        if i == len(args) and not getattr(command, "default_command", None):
            return problems
        name = args[i] if i < len(args) else ""
        if name in command.commands:
            command, i = command.commands[name], i + 1
            path.append(name)
        elif getattr(command, "default_command", None):
            command = command.commands[command.default_command]  # `edgeclf runs DIR` is `edgeclf runs list DIR`
            path.append(command.name)
        else:
            return [f"`{' '.join(path)} {name}`: no such command (the commands are {', '.join(command.commands)})"]
    known = _option_names(command)
    for token in args[i:]:
        if re.fullmatch(r"--[A-Za-z][\w-]*(=.*)?|-[A-Za-z]", token) and token.split("=")[0] not in known:
            problems.append(f"`{' '.join(path)}` has no option {token.split('=')[0]}")
    return problems


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, re.MULTILINE))


def test_every_command_shown_exists_with_the_options_it_shows():
    problems, seen = [], 0
    targets = _make_targets()
    for page in PAGES:
        for number, line in _shell_lines(page):
            where = f"{page.relative_to(ROOT)}:{number}"
            try:
                commands = _commands(line)
            except ValueError as exc:  # an unclosed quote: the line would not run either
                problems.append(f"{where}: not a shell command line ({exc})")
                continue
            for command in commands:
                command = command[1:] if command[0] == "sudo" and len(command) > 1 else command
                program = Path(command[0]).name
                if program == "edgeclf":
                    seen += 1
                    problems += [f"{where}: {p}" for p in check_edgeclf(command[1:])]
                elif program == "make":
                    problems += [f"{where}: no make target {t!r}" for t in command[1:]
                                 if "=" not in t and not t.startswith("-") and t not in targets]
    assert seen >= 20, f"only {seen} edgeclf commands found in ```bash blocks: are the blocks tagged?"
    assert not problems, "\n".join(problems)


def test_the_command_check_catches_a_wrong_command_or_option():
    assert check_edgeclf(["bench", "m.tflite", "--threads", "1,2"]) == []
    assert check_edgeclf(["runs", "runs/", "--sort", "top1"]) == [] and check_edgeclf(["runs", "--json"]) == []
    assert check_edgeclf(["runs", "diff", "a", "b", "--dir", "runs"]) == []
    assert check_edgeclf(["bench", "m.tflite", "--thread", "1"]) == ["`edgeclf bench` has no option --thread"]
    assert check_edgeclf(["benchmark", "m.tflite"])[0].startswith("`edgeclf benchmark`: no such command")
    assert check_edgeclf(["runs", "diff", "a", "b", "--sort", "x"]) == ["`edgeclf runs diff` has no option --sort"]
    assert _commands("edgeclf bench m --json > device.json && make test  # note") == [
        ["edgeclf", "bench", "m", "--json"], ["make", "test"]]


def test_links_and_images_of_the_readme_reach_files_that_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) + re.findall(r'<img src="([^"]+)"', text)
    assert targets, "the README links to no guide"
    missing = [t for t in targets if not t.startswith(("http://", "https://")) and not (ROOT / t).exists()]
    assert not missing, missing


def test_every_guide_is_linked_from_the_readme():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "index.md"
                and f"docs/{p.name}" not in text]
    assert not unlinked, f"guides the README does not link to: {unlinked}"


def test_the_readme_stays_short():
    words = len((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert words < README_WORDS, f"README.md has {words} words; move the depth into a guide under docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_fences_are_closed(page):
    fences = [line for line in page.read_text(encoding="utf-8").splitlines() if FENCE.match(line)]
    assert len(fences) % 2 == 0, f"{page.name}: an unclosed ``` block"
