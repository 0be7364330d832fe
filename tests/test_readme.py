"""The README is the front door: short, and every link, command, config and measurement it and docs/ name is real.

Placeholders are written in capitals (`python -m MODULE`, `--config NAME|PATH`) and are not checked; a YAML path in
`--config` is an example of the user's own file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = [README, REPO / "CHANGES.md", *sorted((REPO / "docs").rglob("*.md"))]
MEASUREMENTS = sorted((REPO / "docs" / "measurements").glob("*.md"))
CONFIG_DIRS = (REPO / "demo" / "generation" / "configs", REPO / "ko_clip" / "config")
# Modules that need more than requirements-dev.txt, as their pages say: the one package each may miss.
OPTIONAL = {"benchmarks.search_benchmark": "hnswlib"}  # requirements-bench.txt

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MODULE = re.compile(r"python -m\s+([A-Za-z_][\w.]*)")
CONFIG = re.compile(r"--config[ =]([\w./|-]+)")


def prose(path: Path) -> str:
    """The page without its fenced code blocks (where `#` starts a comment, not a heading)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (letters of any script kept), spaces → '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in prose(path).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def named(pattern: re.Pattern[str], pages: list[Path]) -> set[str]:
    return {match.rstrip(".") for page in pages for match in pattern.findall(page.read_text(encoding="utf-8"))}


def test_readme_is_short() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


def test_slug_matches_github() -> None:
    assert slug("Blocking calls (`/sdapi/v1` and `/v1`)") == "blocking-calls-sdapiv1-and-v1"
    assert slug("The cost, measured and estimated (`python -m benchmarks.train_cost`)") == (
        "the-cost-measured-and-estimated-python--m-benchmarkstrain_cost"
    )
    assert slug("The refiner's own guidance") == "the-refiners-own-guidance"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in LINK.findall(prose(page)):
        if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
            continue
        file, _, anchor = link.partition("#")
        target = (page.parent / file).resolve() if file else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and anchor not in anchors(target):
            broken.append(f"{link}: no heading with that anchor in {target.relative_to(REPO)}")
    assert not broken, broken


def test_the_two_commands_are_makefile_targets() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make \w+)", FENCE.search(section).group(0), re.MULTILINE)
    assert commands == ["make run", "make test"]
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(encoding="utf-8"), re.MULTILINE))
    assert {"run", "test"} <= targets
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_every_config_named_exists() -> None:
    names = {name for found in named(CONFIG, PAGES) for name in found.split("|")}
    shipped = {name for name in names if re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name)}  # not a path, not a placeholder
    assert {"embedded", "sd2-sdxl", "sdxl", "sd15", "embedded-sdxl", "all-families"} <= shipped
    missing = [name for name in shipped if not any((folder / f"{name}.yaml").exists() for folder in CONFIG_DIRS)]
    assert not missing, missing


def test_every_measurement_names_a_date_and_a_command() -> None:
    assert MEASUREMENTS
    for page in MEASUREMENTS:
        text = page.read_text(encoding="utf-8")
        assert re.search(r"\b20\d\d-\d\d-\d\d\b", text), f"{page.name}: no date"
        assert MODULE.search(text), f"{page.name}: no command"


HELP = """
import contextlib, io, json, os, runpy, sys

answers = {}
for name in json.loads(os.environ["MODULES"]):
    sys.argv = [name, "--help"]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            runpy.run_module(name, run_name="__main__", alter_sys=True)
        answers[name] = 0
    except SystemExit as exit:
        answers[name] = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except ModuleNotFoundError as error:
        answers[name] = f"missing {error.name}"
    except Exception as error:  # an import or start-up failure: the command is broken
        answers[name] = f"{type(error).__name__}: {error}"
print(json.dumps(answers))
"""


@pytest.mark.slow
def test_every_module_named_answers_help() -> None:
    """`python -m MODULE --help` exits 0 for every module the pages name (one interpreter for all: torch loads once)."""
    modules = sorted(name for name in named(MODULE, PAGES) if not name.isupper())
    assert {"demo", "demo.generate", "demo.worker", "demo.vector_search", "ko_clip"} <= set(modules)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MODULES": json.dumps(modules)}
    env.setdefault("OMP_NUM_THREADS", "1")
    done = subprocess.run(
        [sys.executable, "-c", HELP], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=True
    )
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    failed = {
        name: answer for name, answer in answers.items() if answer != 0 and answer != f"missing {OPTIONAL.get(name)}"
    }
    assert not failed, failed


def test_config_help_names_every_shipped_config() -> None:
    from demo.generation.config import config_help
    from ko_clip.config import shipped_configs

    generator_configs = sorted(path.stem for path in CONFIG_DIRS[0].glob("*.yaml"))
    assert config_help() == f"generator config: a YAML path, or one of {', '.join(generator_configs)}"
    assert shipped_configs() == sorted(path.stem for path in CONFIG_DIRS[1].glob("*.yaml"))
