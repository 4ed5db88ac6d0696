"""Sphinx configuration for the offline effnb docs site (used by nbs/_site/build.py; not meant to be run by hand).
The sources are the shimmed notebooks in nbs/_site/_src/; stored outputs are rendered, nothing is executed."""

import configparser
from pathlib import Path

_here = Path(__file__).resolve().parent
_cfg = configparser.ConfigParser()
_cfg.read(_here.parents[1] / 'settings.ini')
_cfg = _cfg['DEFAULT']

project = _cfg['title']
author = _cfg['author']
copyright = _cfg['copyright']
release = version = _cfg['version']

extensions = ['myst_nb', 'sphinx.ext.githubpages']
nb_execution_mode = 'off'  # use the outputs stored in the notebooks
nb_render_markdown_format = 'myst'  # text/markdown outputs (tables, show_doc) get the full MyST syntax
nb_merge_streams = True
myst_enable_extensions = ['colon_fence', 'dollarmath', 'attrs_inline', 'html_image']
myst_heading_anchors = 6  # every heading also gets its slug as an id (nbdev anchors: see build.py)
suppress_warnings = ['myst.header']  # notebooks may jump heading levels (## -> ####), as Quarto allows
exclude_patterns = ['_build', '**.ipynb_checkpoints']

html_theme = 'furo'
html_title = f"{project} {version}"
html_static_path = [str(_here / '_static')]
html_css_files = ['nbdev.css']
html_copy_source = False  # no _sources/ copies of the notebooks
html_show_sourcelink = False
html_last_updated_fmt = None
html_show_search_summary = False  # summaries fetch() each page, which file:// forbids (CORS)
html_theme_options = {
    'source_repository': _cfg['git_url'] + '/',
    'source_branch': _cfg['branch'],
    'source_directory': 'nbs/',
    'top_of_page_buttons': [],
}

# MathJax 3.2.2 vendored by build.py (npm pack mathjax@3.2.2) so math renders offline; without it, a stub that leaves TeX
mathjax_path = 'js/tex-svg.js' if (_here / '_static' / 'js' / 'tex-svg.js').exists() else 'no-mathjax.js'
