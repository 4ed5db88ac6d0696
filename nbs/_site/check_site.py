"""Check the built offline docs site (_docs/) in headless Chromium, the way a reader would open it: from file://.

Run from the repo root after `python nbs/_site/build.py`:
    python nbs/_site/check_site.py            # needs the Debian package `chromium` (apt-get install -y chromium)
Checks: every local href/src in _docs/*.html resolves and no page repeats an id (a dangling #anchor is only a warning);
index.html, core.html, train.html and the four experiment pages load with no console errors, uncaught exceptions or failed requests; core.html
and train.html have their API headings and anchors (seed_everything, benchmark; train); every <img> on these pages
loaded with a non-zero size (train and each experiment page have >= 1 figure); no code, output or table is\nclipped (wider than its box without a scrolling ancestor) and no Markdown table is printed as text; math (if any) was typeset by the vendored MathJax; search.html?q=benchmark lists >= 1 result on core.html.
Screenshots (index, core, train, search) go to _docs/_check/.
Talks to Chromium over the DevTools protocol with a tiny stdlib websocket client (no playwright/selenium).
Exits non-zero with a message on any failure.
"""

import os, re, sys, json, time, base64, socket, shutil, tempfile, subprocess, urllib.parse, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS, OUT = ROOT / '_docs', ROOT / '_docs' / '_check'
FAILS = []


def fail(msg):
    FAILS.append(msg)
    print(f'  FAIL {msg}')


def ok(msg):
    print(f'  ok   {msg}')


class CDP:
    "Minimal Chrome DevTools Protocol client over a hand-rolled websocket (RFC 6455, client side)."

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.s = socket.create_connection((u.hostname, u.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(
            f'GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
            f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n'.encode()
        )
        head = b''
        while not head.endswith(b'\r\n\r\n'):
            head += self.s.recv(1)
        if b' 101 ' not in head.split(b'\r\n')[0]:
            raise RuntimeError(f'websocket handshake failed: {head[:100]!r}')
        self.n, self.events = 0, []

    def _exact(self, n):
        b = b''
        while len(b) < n:
            chunk = self.s.recv(n - len(b))
            if not chunk:
                raise RuntimeError('DevTools connection closed')
            b += chunk
        return b

    def _send(self, text, op=0x1):
        data, mask = text.encode() if isinstance(text, str) else text, os.urandom(4)
        n = len(data)
        hdr = bytes([0x80 | op]) + (
            bytes([0x80 | n])
            if n < 126
            else bytes([0x80 | 126]) + n.to_bytes(2, 'big')
            if n < 65536
            else bytes([0x80 | 127]) + n.to_bytes(8, 'big')
        )
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _recv(self):
        msg = b''
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._exact(2), 'big')
            elif n == 127:
                n = int.from_bytes(self._exact(8), 'big')
            payload = self._exact(n)
            op = b0 & 0x0F
            if op == 0x8:
                raise RuntimeError('DevTools connection closed')
            if op == 0x9:
                self._send(payload, 0xA)
                continue
            msg += payload
            if b0 & 0x80:
                return json.loads(msg)

    def call(self, method, **params):
        self.n += 1
        self._send(json.dumps({'id': self.n, 'method': method, 'params': params}))
        while True:
            m = self._recv()
            if m.get('id') == self.n:
                if 'error' in m:
                    raise RuntimeError(f'{method}: {m["error"]}')
                return m.get('result', {})
            self.events.append(m)

    def wait_for(self, event, timeout=20):
        t = time.time()
        while time.time() - t < timeout:
            if any(e.get('method') == event for e in self.events):
                return True
            self.s.settimeout(max(0.1, timeout - (time.time() - t)))
            try:
                self.events.append(self._recv())
            except socket.timeout:
                break
        self.s.settimeout(30)
        return False

    def js(self, expr):
        r = self.call('Runtime.evaluate', expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r:
            raise RuntimeError(f'evaluate failed: {r["exceptionDetails"]}')
        return r['result'].get('value')


def errors(events):
    "Console errors, uncaught exceptions and failed loads recorded while a page was open."
    out = []
    for e in events:
        m, p = e.get('method'), e.get('params', {})
        if m == 'Runtime.exceptionThrown':
            out.append(
                'Uncaught '
                + p['exceptionDetails']
                .get('exception', {})
                .get('description', p['exceptionDetails'].get('text', ''))
            )
        elif m == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'assert'):
            out.append(
                'console.error: '
                + ' '.join(str(a.get('value', a.get('description'))) for a in p.get('args', []))
            )
        elif m == 'Log.entryAdded' and p['entry'].get('level') == 'error':
            out.append(f'{p["entry"].get("text")} {p["entry"].get("url", "")}')
    return out


def visit(cdp, page, ready_js='true', timeout=10):
    "Open a page, wait for load and for `ready_js` to be truthy; return the console errors seen."
    cdp.events.clear()
    cdp.call(
        'Page.navigate',
        url=(DOCS / page.split('?')[0]).as_uri() + ('?' + page.split('?')[1] if '?' in page else ''),
    )
    if not cdp.wait_for('Page.loadEventFired', timeout):
        fail(f'{page}: no load event within {timeout}s')
    t = time.time()
    while not cdp.js(ready_js) and time.time() - t < timeout:
        time.sleep(0.2)
    cdp.wait_for('never', 0.5)  # collect late console messages
    return errors(cdp.events)


def shot(cdp, name):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f'{name}.png').write_bytes(
        base64.b64decode(cdp.call('Page.captureScreenshot', format='png')['data'])
    )


IMGS = "[...document.querySelectorAll('article img')].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width])"
MATH = "[document.querySelectorAll('.math').length, document.querySelectorAll('mjx-container').length]"
# code, outputs and tables wider than their box must scroll (an ancestor with overflow-x auto/scroll), not be cut off
CLIPPED = """[...document.querySelectorAll('article pre, article table')].filter(e => {
  const right = document.querySelector('article').getBoundingClientRect().right;
  const wide = e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > right + 1;
  for (let x = e; x && x.tagName !== 'ARTICLE'; x = x.parentElement)
    if (['auto', 'scroll'].includes(getComputedStyle(x).overflowX)) return false;
  return wide;
}).map(e => e.tagName + ': ' + e.textContent.trim().slice(0, 50))"""
# a Markdown table printed as text instead of rendered
RAW_TABLES = "[...document.querySelectorAll('article pre')].filter(e => /^\\|[-| :]+\\|\\s*$/m.test(e.textContent)).map(e => e.textContent.trim().slice(0, 50))"


def check_page(cdp, page, headings=(), min_imgs=0):
    errs = visit(
        cdp,
        page,
        "document.readyState === 'complete' && (document.querySelectorAll('.math').length === 0 || document.querySelectorAll('mjx-container').length > 0 || !!document.querySelector('script[src*=no-mathjax]'))",
    )
    for e in errs:
        fail(f'{page}: {e}')
    if not errs:
        ok(f'{page}: loaded, no console errors')
    h1 = cdp.js("(document.querySelector('article h1') || {}).textContent || ''").strip('#¶ \n')
    ok(f'{page}: title "{h1}"') if h1 else fail(f'{page}: no <h1> title')
    for h in headings:
        found = cdp.js(
            f"!!document.getElementById({json.dumps(h)}) && [...document.querySelectorAll('article h2, article h3, article h4')].some(x => x.textContent.replace('¶','').trim() === {json.dumps(h)})"
        )
        ok(f'{page}: API heading and #{h} anchor') if found else fail(
            f'{page}: heading "{h}" or anchor #{h} missing'
        )
    imgs = cdp.js(IMGS)
    bad = [i for i in imgs if not (i[1] and i[2] > 0 and i[3] > 0 and i[4] > 0)]
    if len(imgs) < min_imgs:
        fail(f'{page}: {len(imgs)} figure(s), expected >= {min_imgs}')
    if bad:
        fail(f'{page}: images not loaded or zero-size: {bad}')
    elif imgs:
        ok(f'{page}: {len(imgs)} image(s) loaded, sizes ' + ', '.join(f'{i[2]}x{i[3]}' for i in imgs))
    clipped, raw = cdp.js(CLIPPED), cdp.js(RAW_TABLES)
    for c in clipped:
        fail(f'{page}: wider than its box and not scrollable: {c!r}')
    for t in raw:
        fail(f'{page}: a Markdown table printed as text: {t!r}')
    if not clipped and not raw:
        ok(f'{page}: no clipped code, output or table; no table printed as text')
    n_math, n_mjx = cdp.js(MATH)
    if n_math and cdp.js("!!document.querySelector('script[src*=\"no-mathjax\"]')"):
        print(
            f'  WARN {page}: {n_math} math blocks shown as TeX: MathJax was not vendored (build without npm)'
        )
    elif n_math:
        ok(f'{page}: {n_mjx}/{n_math} math blocks typeset by MathJax') if n_mjx >= n_math else fail(
            f'{page}: math not typeset ({n_mjx}/{n_math})'
        )
    shot(cdp, Path(page).stem)


def check_links():
    "Every relative href in the site points at an existing file, and #anchors at an existing id."
    ids, bad, warn, n = {}, [], set(), 0
    pages = sorted(p for p in DOCS.rglob('*.html') if '_check' not in p.parts)
    for p in pages:
        found = re.findall(r'\bid="([^"]+)"', p.read_text())
        ids[p] = set(found)
        bad += [f'{p.name}: duplicate id "{i}"' for i in sorted(ids[p]) if found.count(i) > 1]
    for p in pages:
        for href in re.findall(r'\b(?:href|src)="([^"]+)"', p.read_text()):
            if re.match(r'^[a-z]+:', href) or href.startswith('//'):
                continue
            path, _, frag = href.partition('#')
            path = path.split('?')[0]
            n += 1
            t = (p.parent / urllib.parse.unquote(path)).resolve() if path else p
            if not t.exists():
                bad.append(f'{p.name}: {href} (no such file)')
            elif frag and t.suffix == '.html' and urllib.parse.unquote(frag) not in ids.get(t, set()):
                warn.add(f'{p.name}: {href}')
    for b in bad:
        fail(f'link {b}')
    for w in sorted(warn):
        print(
            f'  WARN link {w}: no such anchor (a doclink to a symbol without show_doc?); the page itself exists'
        )
    if not bad:
        ok(
            f'{n} local links, images and scripts in {len(pages)} pages resolve'
            + (f' ({len(warn)} dangling anchors)' if warn else '')
        )


def main():
    for f in ('index.html', 'core.html', 'train.html', 'search.html', 'searchindex.js'):
        if not (DOCS / f).exists():
            sys.exit(f'check_site.py: ERROR: {DOCS / f} missing; run `python nbs/_site/build.py` first')
    exe = next(
        (shutil.which(c) for c in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(c)), None
    )
    if not exe:
        sys.exit(
            'check_site.py: ERROR: chromium not found; install it with `apt-get update && apt-get install -y chromium`'
        )
    t0 = time.time()
    print(f'checking {DOCS} with {exe}')
    check_links()
    tmp = tempfile.mkdtemp(prefix='effnb_chk_')
    proc = subprocess.Popen(
        [
            exe,
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            f'--user-data-dir={tmp}',
            '--remote-debugging-port=0',
            '--window-size=1440,1000',
            '--hide-scrollbars',
            'about:blank',
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file, t = Path(tmp) / 'DevToolsActivePort', time.time()
        while not port_file.exists() or len(port_file.read_text().split()) < 2:
            if time.time() - t > 30 or proc.poll() is not None:
                sys.exit('check_site.py: ERROR: chromium did not start')
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=10))
        cdp = CDP(next(t['webSocketDebuggerUrl'] for t in targets if t['type'] == 'page'))
        for d in ('Page', 'Runtime', 'Log'):
            cdp.call(f'{d}.enable')
        cdp.call(
            'Emulation.setDeviceMetricsOverride', width=1440, height=1000, deviceScaleFactor=1, mobile=False
        )
        check_page(cdp, 'index.html')
        check_page(cdp, 'core.html', headings=('seed_everything', 'benchmark'))
        check_page(cdp, 'train.html', headings=('train',), min_imgs=1)
        for exp in ('ssm_experiment', 'multiscale_experiment', 'vlm_experiment', 'svtr_experiment'):
            check_page(cdp, f'{exp}.html', min_imgs=1)
        errs = visit(
            cdp,
            'search.html?q=benchmark',
            "document.querySelectorAll('ul.search li').length > 0 || /did not match/.test(document.body.innerText)",
        )
        for e in errs:
            fail(f'search: {e}')
        hits = cdp.js("[...document.querySelectorAll('ul.search li a')].map(a => a.getAttribute('href'))")
        if hits and any(h.startswith('core.html') for h in hits):
            ok(f'search "benchmark" (file://): {len(hits)} hit(s): {", ".join(hits[:4])}')
        else:
            fail(f'search "benchmark" gave no hit on core.html (hits: {hits})')
        shot(cdp, 'search')
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        sys.exit(f'check_site.py: {len(FAILS)} check(s) FAILED (screenshots in {OUT})')
    print(f'check_site.py: all checks passed in {time.time() - t0:.1f}s; screenshots in {OUT}')


if __name__ == '__main__':
    main()
