"""One pytest test per notebook: each runs in a fresh Python process through `nbdev.test.test_nb`,
skipping the cells flagged with settings.ini's `tst_flags` (`notest slow`) unless forced with `--slow`/`--nb-flags`."""

import subprocess, sys
from pathlib import Path
import pytest
from nbdev.config import get_config

cfg = get_config()
NBS = sorted(
    p
    for p in Path(cfg.nbs_path).rglob("*.ipynb")
    if not any(part.startswith(("_", ".")) for part in p.relative_to(cfg.nbs_path).parts)
)

RUNNER = """
import sys
from pathlib import Path
from nbdev.test import test_nb
ok, secs = test_nb(Path(sys.argv[1]), skip_flags=sys.argv[2].split(), force_flags=sys.argv[3].split(), basepath=sys.argv[4])
print(f"{sys.argv[1]}: {'passed' if ok else 'FAILED'} in {secs:.1f} s")
sys.exit(0 if ok else 1)
"""


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb, request):
    force = request.config.getoption("--nb-flags").split() + (
        ["slow"] if request.config.getoption("--slow") else []
    )
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            str(nb),
            " ".join(cfg.tst_flags.split()),
            " ".join(force),
            str(cfg.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=request.config.getoption("--nb-timeout"),
    )
    print(p.stdout)
    assert p.returncode == 0, f"{nb.name} failed:\n{p.stderr[-6000:]}"
