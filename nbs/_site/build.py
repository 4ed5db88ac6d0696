"""Offline docs site and README for effnb: nbdev's own notebook processing + a "quarto-lite" shim + Sphinx/myst-nb/furo.

Run from the repo root (no Quarto needed, nothing is installed):
    python nbs/_site/build.py            # site -> _docs/  (open _docs/index.html; search works from file://)
    python nbs/_site/build.py --readme   # README.md from nbs/index.ipynb (GitHub-flavoured Markdown)
Options: --lenient (Sphinx warnings are not errors), --keep (keep _proc/ and nbs/_site/_src/ for debugging).
Pipeline: refresh_quarto_yml + _build_modidx + proc_nbs(force=True) -> _proc/ -> shim -> nbs/_site/_src/ -> sphinx-build -> _docs/.
Page names (core.html, train.html, ...) follow nbdev's output-file rule, so _modidx.py links match the Quarto route.
Exits non-zero on any error. Quarto users keep using nbdev_docs / nbdev_readme with nbs/_quarto.yml and nbs/sidebar.yml.
"""

import os, re, sys, json, html, shutil, tarfile, tempfile, subprocess, argparse, time
from pathlib import Path
from importlib.metadata import entry_points
import yaml

SITE = Path(__file__).resolve().parent
ROOT = SITE.parents[1]
NBS, SRC, PROC, DOCS = ROOT / 'nbs', SITE / '_src', ROOT / '_proc', ROOT / '_docs'
MATHJAX = SITE / '_static' / 'js' / 'tex-svg.js'
OPT_RE = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')  # a Quarto cell option line
LINK_RE = re.compile(r'\[((?:`[^`]*`|[^\]\[])*)\]\(([^)\s]+)\)(\{[^}]*\})?')  # [text](url){attrs}
CALLOUT_RE = re.compile(r'^:::+\s*\{\.callout-(\w+)([^}]*)\}\s*$')
FENCE_RE = re.compile(r'^(```+|~~~+)')


def die(msg):
    sys.exit(f'build.py: ERROR: {msg}')


def log(msg):
    print(f'[{time.perf_counter() - T0:5.1f}s] {msg}', flush=True)


def page_name(nb: Path):
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb.name.lower()).rsplit('.', 1)[0]  # nbdev's _nbpath2html


# ---------- step 1: nbdev's own processing (never the CLIs: they try to install Quarto and `pip install -e`) ----------
def nbdev_proc(readme_only=False):
    os.chdir(ROOT)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    if not any(ep.name == 'effnb' for ep in entry_points(group='nbdev')):
        die(
            'the `nbdev` entry point of effnb is not installed (run `pip install -e .`); [source] links and doclinks need it'
        )
    import nbdev.quarto, nbdev.doclinks

    def _no_install(*a, **k):
        raise RuntimeError('refusing to install Quarto')

    nbdev.quarto.install_quarto = nbdev.quarto.install = _no_install  # belt and braces
    from nbdev.quarto import refresh_quarto_yml

    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    if readme_only:  # just index.ipynb, in-process, into a temp dir
        from nbdev.serve_drv import main as proc_one
        from nbdev.processors import FilterDefaults

        dst = Path(tempfile.mkdtemp(prefix='effnb_readme_')) / 'index.ipynb'
        try:
            proc_one((NBS / 'index.ipynb', dst, FilterDefaults))
            return dst
        except Exception as e:
            die(f'nbdev processing of nbs/index.ipynb failed: {e}')
    from nbdev.serve import proc_nbs

    try:
        return proc_nbs(force=True)
    except Exception as e:
        die(
            f'nbdev processing failed: {e}\n(hint: docs processing runs every cell that contains an import, and show_doc cells; '
            'a cell that mixes an import with code needing earlier test cells fails here: keep imports alone in their cells)'
        )


# ---------- step 2: the quarto-lite shim ----------
def cfg_urls():
    import configparser

    c = configparser.ConfigParser()
    c.read(ROOT / 'settings.ini')
    d = c['DEFAULT']
    return d['doc_host'].rstrip('/') + '/' + d['doc_baseurl'].strip('/') + '/', d


def quarto_slug(s):
    "Pandoc's auto identifier, which nbdev anchors follow (`core.html#benchresult.update`)."
    s = re.sub(r'<[^>]+>|[`*]', '', s).strip().lower()
    return re.sub(r'\s+', '-', re.sub(r'[^\w\s.-]', '', s))


def sphinx_ids(s):
    "The ids Sphinx gives a heading: docutils' id and MyST's heading-anchor slug."
    s = re.sub(r'<[^>]+>|[`*]', '', s).strip().lower()
    return {re.sub(r'[^a-z0-9]+', '-', s).strip('-'), re.sub(r'[^\w\- ]', '', s).replace(' ', '-')}


def clean_code(block):
    "A fenced code block: show_doc signatures lose their doclinks and padding lines."
    body = '\n'.join(block[1:-1]).strip('\n')
    if re.match(r'(async )?(def|class) ', body):
        body = re.sub(r'\n[ \t]*(?=\n)', '', body)  # `f(\n    \n)`
    body = LINK_RE.sub(
        lambda m: (
            m.group(1).strip('`')
            if m.group(2).startswith(('http', '#')) or '.html' in m.group(2)
            else m.group(0)
        ),
        body,
    )
    return [block[0], body, block[-1]] if len(block) > 1 else block


def clean_md(md, target, pages, base):
    "Quarto/nbdev Markdown -> MyST (target='site') or GitHub Markdown (target='readme')."
    md = re.sub(r'\A\s*---\s*\n', '', md)  # show_doc's leading rule
    md = re.sub(
        r'^(\[source\]\([^)]*\)\{[^}]*\})\s*\n+(#{2,6} .+)$', r'\2\n\n\1', md, flags=re.M
    )  # source link after its heading
    out, stack, block = [], [], None  # stack: open fenced divs (None, or [kind, title, body] for a callout)

    def sink():
        return next((d[2] for d in reversed(stack) if d), out)

    for line in md.split('\n'):
        st = line.strip()
        if block is not None:  # inside a code fence
            block.append(line)
            if st.startswith(block[0].strip()[:3]) and st.strip(st[:1]) == '':
                sink().extend(clean_code(block))
                block = None
            continue
        if FENCE_RE.match(st):
            block = [line]
            continue
        m = CALLOUT_RE.match(st)
        if m:
            t = re.search(r'title="([^"]*)"', m.group(2))
            stack.append([m.group(1), t.group(1) if t else None, []])
            continue
        if re.match(r'^:::+\s*(\{[^}]*\}|\w.*)$', st):
            stack.append(None)
            continue  # other fenced divs: unwrap
        if re.match(r'^:::+$', st) and stack:
            d = stack.pop()
            if d:
                sink().extend(_callout(*d, target))
            continue
        line = LINK_RE.sub(lambda mm: _link(mm, target, pages, base), line)
        h = re.match(r'^(#{2,6})\s+(.+?)\s*$', line)
        if (
            h and target == 'site' and quarto_slug(h.group(2)) not in sphinx_ids(h.group(2))
        ):  # e.g. #runningmean.update
            sink().extend([f'<a id="{quarto_slug(h.group(2))}" class="nbdev-anchor"></a>', ''])
        sink().append(line)
    if block:
        sink().extend(block)  # unclosed fence: leave as is
    while stack:
        d = stack.pop()
        if d:
            sink().extend(_callout(*d, target))
    return '\n'.join(out)


def _link(m, target, pages, base):
    text, url, attrs = m.groups()
    if text == 'source' and attrs:  # show_doc's [source](url){target=... style=...}
        return (
            f'<a class="nbdev-src" href="{html.escape(url)}" target="_blank" rel="noopener">source</a>'
            if target == 'site'
            else f'[source]({url})'
        )
    rel = url[len(base) :] if url.startswith(base) else url
    nb = re.match(r'^([\w.-]+)\.ipynb(#.*)?$', rel)  # [x](00_core.ipynb) -> core.html, as Quarto does
    if nb:
        rel = pages.get(nb.group(1), page_name(Path(nb.group(1)))) + '.html' + (nb.group(2) or '')
    if target == 'readme':
        return f'[{text}]({base + rel if rel != url or nb else url})'
    if rel == url and not re.match(r'^[\w./-]+\.html(#[\w.-]*)?$', rel):
        return m.group(0)  # external/other links: MyST handles them
    inner = re.sub(
        r'`([^`]+)`',
        lambda c: f'<code>{html.escape(c.group(1))}</code>',
        html.escape(text, quote=False).replace('&#x27;', "'"),
    )
    return f'<a href="{html.escape(rel)}">{inner}</a>'  # raw HTML: MyST would drop an unresolved [x](core.html#y)


def _callout(kind, title, body, target):
    if body and not title and re.match(r'^#+\s', body[0].strip() if body else ''):
        title, body = re.sub(r'^#+\s*', '', body[0].strip()), body[1:]
    body = '\n'.join(body).strip('\n')
    if target == 'readme':
        alert = {
            'note': 'NOTE',
            'tip': 'TIP',
            'warning': 'WARNING',
            'important': 'IMPORTANT',
            'caution': 'CAUTION',
        }.get(kind, 'NOTE')
        lines = ([f'**{title}**', ''] if title else []) + body.split('\n')
        return ['', f'> [!{alert}]'] + [('> ' + l).rstrip() for l in lines] + ['']
    c = ':' * max([3] + [len(x) + 1 for x in re.findall(r'^\s*(:{3,})', body, re.M)])  # outlast nested fences
    if title:
        return ['', f'{c}{{admonition}} {title}', f':class: {kind}', body, c, '']
    return [
        '',
        f'{c}{{{kind if kind in ("note", "tip", "warning", "important", "caution") else "note"}}}',
        body,
        c,
        '',
    ]


def cell_opts(src):
    "Split leading `#| key: value` lines off a code cell."
    lines, opts = src.split('\n'), {}
    while lines and OPT_RE.match(lines[0]):
        k, v = OPT_RE.match(lines[0]).groups()
        opts[k] = v.strip('"\'')
        lines.pop(0)
    return opts, '\n'.join(lines).strip('\n')


def with_ids(cells):
    "Deterministic ids for cells that lack one (nbformat 4.5 wants them)."
    for i, c in enumerate(cells):
        c.setdefault('id', f'cell-{i}')
    return cells


def md_cell(src):
    return {'cell_type': 'markdown', 'metadata': {}, 'source': src}


def convert(nb, target, pages, base):
    "Apply the shim to one processed notebook; returns (title, cells)."
    cells, title = [], None
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'raw':
            fm = (
                yaml.safe_load(re.match(r'\s*---\s*\n(.*?)\n---', src, re.S).group(1))
                if src.strip().startswith('---')
                else {}
            )
            if fm and fm.get('title'):
                title = str(fm['title'])
                cells.append(
                    md_cell(f'# {title}' + (f'\n\n> {fm["description"]}' if fm.get('description') else ''))
                )
            continue
        if c['cell_type'] == 'markdown':
            if src.strip():
                cells.append(md_cell(clean_md(src, target, pages, base)))
            continue
        opts, code = cell_opts(src)
        if opts.get('include') == 'false':
            continue
        outs = (
            []
            if opts.get('output') == 'false'
            else [o for o in c.get('outputs', []) if o['output_type'] != 'error']
        )
        for o in outs:
            if o['output_type'] == 'stream':  # progress bars: keep what a terminal shows last
                o['text'] = '\n'.join(l.rstrip('\r').split('\r')[-1] for l in ''.join(o['text']).split('\n'))
            o.get('data', {}).pop(
                'application/vnd.jupyter.widget-view+json', None
            )  # widgets need JS from a CDN
            if 'text/markdown' in o.get('data', {}):
                o['data']['text/markdown'] = clean_md(
                    ''.join(o['data']['text/markdown']), target, pages, base
                )
        echo = opts.get('echo') != 'false' and code.strip()
        outs = [o for o in outs if o['output_type'] == 'stream' or o.get('data')]
        if opts.get('output') == 'asis':  # Markdown and stdout become page content
            md = lambda o: (
                o['data']['text/markdown']
                if 'text/markdown' in o.get('data', {})
                else clean_md(''.join(o['text']), target, pages, base)
                if o.get('name') == 'stdout'
                else None
            )
            if echo:
                cells.append(dict(c, source=code, outputs=[], metadata={}))
            cells += [
                md_cell(md(o))
                if md(o) is not None
                else dict(c, source='', outputs=[o], metadata={'tags': ['remove-input']})
                for o in outs
            ]
            continue
        if not echo and not outs:
            continue
        tags = ['remove-input'] if not echo else ['hide-input'] if opts.get('code-fold') == 'true' else []
        cells.append(
            dict(c, source=code, outputs=outs, metadata={'tags': tags} if tags else {}, execution_count=None)
        )
    return title, cells


def sidebar_pages():
    "Notebooks in sidebar.yml order (only those that exist), then any unlisted notebooks; sections keep their names."
    listed, order = [], []

    def walk(items, section):
        for it in items or []:
            if isinstance(it, str):
                order.append((section, it))
            elif isinstance(it, dict):
                if 'href' in it:
                    order.append((it.get('section', section), it['href']))
                walk(it.get('contents'), it.get('section', section))

    sb = NBS / 'sidebar.yml'
    if sb.exists():
        walk(yaml.safe_load(sb.read_text())['website']['sidebar']['contents'], None)
    for sec, f in order:
        if f.endswith('.ipynb') and (PROC / f).exists() and f not in [x for _, x in listed]:
            listed.append((sec, f))
    extra = sorted(
        p.relative_to(PROC).as_posix()
        for p in PROC.rglob('*.ipynb')
        if not any(s.startswith(('.', '_')) for s in p.relative_to(PROC).parts)
    )
    for f in extra:
        if f not in [x for _, x in listed]:
            print(f'build.py: warning: {f} is not in nbs/sidebar.yml; appended to the navigation')
            listed.append((None, f))
    return listed


def check_title_cell(f):
    "nbdev keeps only the title, description and `- key: value` lines of the `# Title` cell; warn if more would be lost."
    for c in json.loads((NBS / f).read_text())['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown' and re.search(r'^#\s+\S', src, re.M):
            lost = [l for l in src.split('\n') if l.strip() and not re.match(r'^(#\s|>\s|-\s+\S.*:)', l)]
            if lost:
                print(
                    f'build.py: warning: {f}: the title cell also holds {lost[0][:50]!r}...; nbdev drops it from the docs (move it to its own cell)'
                )
            return


def build_src(base):
    shutil.rmtree(SRC, ignore_errors=True)
    SRC.mkdir(parents=True)
    for p in PROC.rglob('*'):  # images and other files the notebooks reference
        if p.relative_to(PROC).parts[0] == 'results':
            continue  # committed results: data, not pages
        if (
            p.is_file()
            and p.suffix != '.ipynb'
            and p.name not in ('_quarto.yml', 'nbdev.yml', 'sidebar.yml', 'styles.css')
        ):
            (SRC / p.relative_to(PROC)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, SRC / p.relative_to(PROC))
    entries = sidebar_pages()
    pages = {Path(f).stem: page_name(Path(f)) for _, f in entries}
    names, has_index = [], False
    for sec, f in entries:
        nb = json.loads((PROC / f).read_text())
        check_title_cell(f)
        fm = (
            next(
                (
                    yaml.safe_load(m.group(1))
                    for c in nb['cells']
                    if c['cell_type'] == 'raw'
                    for m in [re.match(r'\s*---\s*\n(.*?)\n---', ''.join(c['source']), re.S)]
                    if m
                ),
                {},
            )
            or {}
        )
        name = (
            Path(f).parent / Path(fm.get('output-file') or page_name(Path(f)) + '.html').stem
        ).as_posix()  # core, train, ...
        title, cells = convert(nb, 'site', pages, base)
        if title is None:
            die(f'{f} has no title (a `# Title` Markdown cell); Sphinx needs one per page')
        if name == 'index':
            has_index, index_nb = True, (nb, cells)
        else:
            names.append((sec, name))
        nb['cells'] = with_ids(cells)
        nb['metadata'].pop('widgets', None)
        (SRC / f'{name}.ipynb').parent.mkdir(parents=True, exist_ok=True)
        (SRC / f'{name}.ipynb').write_text(json.dumps(nb, indent=1, sort_keys=True))
    tocs, groups = [], {}
    for sec, n in names:
        groups.setdefault(sec, []).append(n)
    for sec, ns in groups.items():
        tocs.append(
            '```{toctree}\n:hidden:\n:maxdepth: 1\n'
            + (f':caption: {sec}\n' if sec else '')
            + '\n'.join(ns)
            + '\n```'
        )
    if has_index:
        nb, cells = index_nb
        nb['cells'] = with_ids(cells + [md_cell(t) for t in tocs])
        (SRC / 'index.ipynb').write_text(json.dumps(nb, indent=1, sort_keys=True))
    else:
        print('build.py: warning: nbs/index.ipynb does not exist; writing a placeholder home page')
        (SRC / 'index.md').write_text(
            f'# {CFG["title"]}\n\n> {CFG["description"]}\n\n' + '\n\n'.join(tocs) + '\n'
        )
    return [n for _, n in names]


# ---------- step 3: Sphinx ----------
def vendor_mathjax():
    if MATHJAX.exists() and MATHJAX.stat().st_size > 1_000_000:
        return True
    if not shutil.which('npm'):
        print('build.py: WARNING: npm not found; math will not render (MathJax not vendored)')
        return False
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(
            ['npm', 'pack', 'mathjax@3.2.2', '--silent'], cwd=d, capture_output=True, text=True
        )
        tgz = Path(d) / 'mathjax-3.2.2.tgz'
        if r.returncode or not tgz.exists():
            print(
                f'build.py: WARNING: `npm pack mathjax@3.2.2` failed; math will not render\n{r.stderr[-500:]}'
            )
            return False
        with tarfile.open(tgz) as t:
            data = t.extractfile('package/es5/tex-svg.js').read()
    MATHJAX.parent.mkdir(parents=True, exist_ok=True)
    tmp = MATHJAX.with_suffix('.tmp')
    tmp.write_bytes(data)
    os.replace(tmp, MATHJAX)
    return True


def sphinx(lenient):
    "Build into a temp dir (myst-nb writes jupyter_execute/ next to the output dir), then replace _docs/."
    with tempfile.TemporaryDirectory(prefix='effnb_sphinx_') as tmp:
        out = Path(tmp) / 'html'
        cmd = [
            sys.executable,
            '-m',
            'sphinx',
            '-q',
            '-E',
            '-b',
            'html',
            '-c',
            str(SITE),
            '-j',
            '1',
            str(SRC),
            str(out),
        ]
        if not lenient:
            cmd[4:4] = ['-W', '--keep-going']
        r = subprocess.run(cmd, env=dict(os.environ, PYTHONHASHSEED='0'))
        if r.returncode:
            die(f'sphinx-build failed (exit {r.returncode}); see the messages above')
        shutil.rmtree(out / '.doctrees', ignore_errors=True)
        (out / '.buildinfo').unlink(missing_ok=True)
        if (out / '_sources').is_dir() and not any((out / '_sources').iterdir()):
            (out / '_sources').rmdir()
        (out / '.nojekyll').touch()
        shutil.rmtree(DOCS, ignore_errors=True)
        shutil.move(str(out), str(DOCS))


# ---------- README ----------
def readme(base):
    if not (NBS / 'index.ipynb').exists():
        die('nbs/index.ipynb does not exist')
    p = nbdev_proc(readme_only=True)
    nb = json.loads(p.read_text())
    shutil.rmtree(p.parent, ignore_errors=True)
    pages = {f.stem: page_name(f) for f in NBS.glob('*.ipynb')}
    _, cells = convert(nb, 'readme', pages, base)
    out, imgs = [], {}
    for i, c in enumerate(cells):
        src = c['source'] if isinstance(c['source'], str) else ''.join(c['source'])
        if c['cell_type'] == 'markdown':
            out.append(src.strip('\n'))
            continue
        if 'remove-input' not in c.get('metadata', {}).get('tags', []):
            out.append(f'``` python\n{src}\n```')
        for j, o in enumerate(c.get('outputs', [])):
            d = o.get('data', {})
            if o['output_type'] == 'stream':
                out.append('    ' + ''.join(o['text']).rstrip('\n').replace('\n', '\n    '))
            elif 'text/markdown' in d:
                out.append(''.join(d['text/markdown']).strip('\n'))
            elif 'image/png' in d:
                fn = f'index_files/figure-commonmark/cell-{i + 1}-output-{j + 1}.png'
                imgs[fn] = d['image/png']
                out.append(f'![]({fn})')
            elif 'text/html' in d:
                out.append(''.join(d['text/html']).strip('\n'))
            elif 'text/plain' in d:
                out.append('    ' + ''.join(d['text/plain']).rstrip('\n').replace('\n', '\n    '))
    text = '\n\n'.join(s for s in out if s.strip()) + '\n'
    text = re.sub(
        r'\n{3,}',
        '\n\n',
        text.replace(
            '<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->',
            '\n<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->\n',
        ),
    )
    import base64

    shutil.rmtree(ROOT / 'index_files' / 'figure-commonmark', ignore_errors=True)  # no stale figures
    for fn, b64 in imgs.items():  # same place `nbdev_readme` puts README figures
        f = ROOT / fn
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(base64.b64decode(''.join(b64)))
    tmp = ROOT / 'README.md.tmp'
    tmp.write_text(text)
    os.replace(tmp, ROOT / 'README.md')
    log(
        f'wrote README.md ({len(text)} chars' + (f', {len(imgs)} figure(s) in index_files/)' if imgs else ')')
    )


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument(
        '--readme', action='store_true', help='regenerate README.md from nbs/index.ipynb instead of the site'
    )
    ap.add_argument('--lenient', action='store_true', help='do not turn Sphinx warnings into errors')
    ap.add_argument('--keep', action='store_true', help='keep _proc/ and nbs/_site/_src/ afterwards')
    a = ap.parse_args()
    T0 = time.perf_counter()
    BASE, CFG = cfg_urls()
    if a.readme:
        readme(BASE)
        sys.exit(0)
    nbdev_proc()
    log('nbdev processing -> _proc/')
    names = build_src(BASE)
    log(f'shim -> nbs/_site/_src/ (index + {len(names)} pages: {", ".join(names)})')
    vendor_mathjax()
    sphinx(a.lenient)
    log(f'sphinx -> {DOCS.relative_to(ROOT)}/  (open {DOCS / "index.html"})')
    if not a.keep:
        shutil.rmtree(SRC, ignore_errors=True)
        shutil.rmtree(PROC, ignore_errors=True)
