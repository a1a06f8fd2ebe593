"""Render a report from a small real run store in headless Chromium and screenshot it.

    python tests/browser/render_report.py [OUT_DIR]      (``make test-browser``)

Runs digits_mlp (adamw, lion, an sgd lr sweep; 2 seeds, 60 steps) and a small char_lm (2 seeds,
30 steps) into ``OUT_DIR/runs.db``, writes the report to ``OUT_DIR/report``, and screenshots the
page at 1280 px width into ``OUT_DIR/report.png`` (full page) and ``OUT_DIR/report_part*.png``
(1280 x 1300 slices, easier to read). It fails when Chromium is missing, when the screenshot is
blank, or when a figure did not decode in the browser (its area stays white). Look at the
screenshots yourself: this checks that the page renders, not that it reads well.

Chromium: ``$CHROMIUM``, else ``chromium``, ``chromium-browser`` or ``google-chrome`` on PATH.
Not part of ``make test``: it needs a browser and takes about a minute on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from optimlab.lab.report import write_report
from optimlab.lab.runner import run
from optimlab.lab.store import RunStore

WIDTH = 1280
CHAR_LM = {"d": 64, "n_layers": 1, "context": 32, "batch_size": 16, "corpus_chars": 200000,
           "eval_batches": 2}


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    sys.exit("render_report: no Chromium found (set CHROMIUM, or run `make test-browser`, "
             "which installs the Debian package `chromium`)")


def make_store(path: Path) -> None:
    with RunStore(path) as db:
        kw = dict(steps=60, eval_every=10, store=db)
        for seed in (0, 1):
            run("digits_mlp", "adamw", seed=seed, **kw)
            run("digits_mlp", "lion", hparams={"lr": 3.3e-4}, seed=seed, **kw)
            for lr in (0.01, 0.1, 0.3):
                run("digits_mlp", "sgd", hparams={"lr": lr, "momentum": 0.9}, seed=seed, **kw)
            run("char_lm", "adamw", seed=seed, steps=30, eval_every=10, task_options=CHAR_LM, store=db)


def screenshot(browser: str, page: Path, png: Path, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no state kept between runs
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={WIDTH},{height}",
                        f"--screenshot={png}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=180)


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "optimlab-report/browser")
    out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    db = out / "runs.db"
    if not db.exists():
        make_store(db)
    paths = write_report(db, out / "report", title="optimlab report (browser check)")
    # Tall enough for the whole page (figures are at most ~500 px each, tables ~30 px a row).
    height = 1200 + 520 * len(paths.figures) + 60 * paths.runs
    png = out / "report.png"
    screenshot(browser, paths.html, png, height)
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    ink = (pixels.min(axis=2) < 200).any(axis=1)  # rows with anything drawn on them
    if ink.sum() < 0.3 * len(paths.figures) * 250:
        print(f"render_report: {png} is (nearly) blank: {ink.sum()} drawn rows", file=sys.stderr)
        return 1
    colored = (pixels.max(axis=2) - pixels.min(axis=2) > 80).sum()  # curve colours, not grey text
    if colored < 2000 * len(paths.figures):
        print(f"render_report: only {colored} coloured pixels for {len(paths.figures)} figures: "
              "figures did not render", file=sys.stderr)
        return 1
    last = int(np.nonzero(ink)[0].max()) + 40
    full = Image.open(png).crop((0, 0, WIDTH, min(last, pixels.shape[0])))
    full.save(png)
    for i, top in enumerate(range(0, full.height, 1300)):
        full.crop((0, top, WIDTH, min(top + 1300, full.height))).save(out / f"report_part{i}.png")
    print(f"{paths.runs} runs, {len(paths.figures)} figures; screenshots: {png} and "
          f"{out}/report_part*.png ({full.height} px tall) -- look at them.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
