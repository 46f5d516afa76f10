"""The README and the docs: the README fits a page and its set-up is two commands; the options page cannot drift
from `pytest bench/ --help`; every page is in the site's navigation."""
import re

import pytest
import yaml
from conftest import ROOT, run_bench

README = ROOT / "README.md"
DOCS = ROOT / "docs"


def test_the_readme_fits_a_page_and_its_first_commands_are_the_set_up_the_main_job_and_the_tests():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("  #")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands[0].endswith("pip install -c constraints.txt -e '.[test,jax,deploy,docs]'")
    assert commands[1:] == ["pytest bench/ --benchmark-autosave && python -m bench.report", "pytest"]
    assert "bench.export" not in first_block  # the exports are the main job's, not a set-up step


@pytest.mark.slow
def test_every_option_of_pytest_bench_is_on_the_options_page(tmp_path):
    done = run_bench("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    group = done.stdout.split("cnnbench matrix:", 1)[1].split("\n\n", 1)[0]
    options = set(re.findall(r"^  (--[a-z][a-z-]+)", group, re.M))
    assert {"--models", "--processes", "--spread-workers", "--resume"} <= options  # the parse found the group
    page = (DOCS / "options.md").read_text()
    assert not {o for o in options if f"`{o}" not in page}, "options missing from docs/options.md"


def test_every_page_is_in_the_navigation_and_every_link_of_the_readme_is_a_page():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = {page for entry in nav for page in entry.values()}
    assert listed == {path.name for path in DOCS.glob("*.md")}
    for target in re.findall(r"\]\((docs/[^)#]+)", README.read_text()):
        assert (ROOT / target).exists(), target
