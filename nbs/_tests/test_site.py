"""Examples of the offline docs converter's Markdown functions (nbs/_site/build.py), run as tests."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "effnb_site_build", Path(__file__).parents[1] / "_site" / "build.py"
)
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)
BASE = "https://effnb.github.io/effnb/"
PAGES = {"00_core": "core", "11_ssm_experiment": "ssm_experiment"}


def test_page_name():
    assert build.page_name(Path("00_core.ipynb")) == "core"
    assert build.page_name(Path("00a_train.ipynb")) == "train"
    assert build.page_name(Path("11_ssm_experiment.ipynb")) == "ssm_experiment"
    assert build.page_name(Path("index.ipynb")) == "index"


def test_slugs():
    assert build.quarto_slug("`BenchResult.update`") == "benchresult.update"
    assert build.quarto_slug("The *fast* scan") == "the-fast-scan"
    assert "benchresult-update" in build.sphinx_ids("BenchResult.update")


def test_cell_opts():
    assert build.cell_opts("#| echo: false\n#| output: asis\nprint(1)") == (
        {"echo": "false", "output": "asis"},
        "print(1)",
    )
    assert build.cell_opts("x = 1") == ({}, "x = 1")


def test_clean_code_drops_doclinks_in_signatures():
    block = ["```python", "def f(x:[Tensor](https://pytorch.org/x.html))", "```"]
    assert build.clean_code(block) == ["```python", "def f(x:Tensor)", "```"]


def test_notebook_links_become_pages():
    assert (
        build.clean_md("see [core](00_core.ipynb#benchmark)", "site", PAGES, BASE)
        == 'see <a href="core.html#benchmark">core</a>'
    )
    assert (
        build.clean_md("see [core](00_core.ipynb)", "readme", PAGES, BASE) == f"see [core]({BASE}core.html)"
    )
    assert build.clean_md("[docs](https://example.org)", "site", PAGES, BASE) == "[docs](https://example.org)"


def test_callouts():
    md = ":::{.callout-warning}\n## Careful\nThe scan is fp32.\n:::"
    assert build.clean_md(md, "readme", PAGES, BASE).split("\n") == [
        "",
        "> [!WARNING]",
        "> **Careful**",
        ">",
        "> The scan is fp32.",
        "",
    ]
    site = build.clean_md(md, "site", PAGES, BASE)
    assert "{admonition} Careful" in site and ":class: warning" in site


def test_code_fences_are_left_alone():
    md = "```python\nx = [a](00_core.ipynb)\n```"
    assert build.clean_md(md, "site", PAGES, BASE) == md


def test_headings_get_quarto_anchors_on_the_site():
    out = build.clean_md("### BenchResult.update", "site", PAGES, BASE)
    assert out.startswith('<a id="benchresult.update" class="nbdev-anchor"></a>') and out.endswith(
        "### BenchResult.update"
    )
