"""pytest options for the notebook tests: `--slow` also runs cells flagged `#| slow`."""


def pytest_addoption(parser):
    parser.addoption(
        "--slow", action="store_true", help="also run cells flagged `#| slow` (the full experiments)"
    )
    parser.addoption("--nb-flags", default="", help="space-separated extra tst_flags to run (e.g. 'slow')")
    parser.addoption(
        "--nb-timeout",
        type=float,
        default=900,
        help="seconds allowed per notebook (default 900: a hung notebook fails, not the whole run)",
    )
