"""Screenshot an asset page with one of its markdown plots (or tables, or plain entries) open, from a running
``dagster dev``.

Usage (after ``bash scripts/main.sh``, with ``dagster dev -w workspace.yaml -p 3311`` running)::

    .venv/bin/python scripts/screenshot.py --url http://127.0.0.1:3311 --out out/selected_subset.png
    .venv/bin/python scripts/screenshot.py --asset sample/entropy_law --partition "" --key loss_vs_ratio \
        --out out/entropy_law.png
    .venv/bin/python scripts/screenshot.py --key churn_kept --out out/churn.png  # a plain entry: the page from there
    .venv/bin/python scripts/screenshot.py --overview --out out/overview.png  # the overview: status, columns

Needs Debian's ``chromium`` (``apt-get install chromium``) and ``pip install playwright``; no browser download.
"""

import argparse
import contextlib
import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

SHOW_MARKDOWN = "[Show Markdown]"
"""The link that opens a markdown metadata entry (a plot); a table entry is shown inline."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _dismiss_community_modal(page: Page) -> None:
    """A fresh browser profile first meets a "Join the Dagster community" modal, shown after a moment."""
    with contextlib.suppress(PlaywrightTimeoutError):
        page.get_by_role("button", name="Skip").click(timeout=10000)


def overview(url: str, asset_path: str, out: Path) -> Path:
    """The asset's overview page (its status: row count, checks, freshness; its description and columns) as a PNG."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1500})
        page.goto(f"{url}/assets/{asset_path}?view=overview", wait_until="networkidle")
        _dismiss_community_modal(page)
        page.get_by_text("Columns", exact=True).first.wait_for(timeout=30000)
        page.wait_for_timeout(1000)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()
    return out


def screenshot(url: str, asset_path: str, partition: str, key: str, out: Path) -> Path:
    """Open the asset's latest materialization (of ``partition``, when given), show the plot or table held in
    metadata ``key``, and save a PNG; for any other entry (numbers, JSON), the page with that entry at its top."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        query = f"&partition={partition}" if partition else ""
        page.goto(f"{url}/assets/{asset_path}?view=events{query}", wait_until="networkidle")
        _dismiss_community_modal(page)
        page.get_by_text(key, exact=True).first.wait_for(timeout=30000)
        row = page.locator("tr", has=page.get_by_text(key, exact=True)).first
        out.parent.mkdir(parents=True, exist_ok=True)
        if row.locator("table").count():  # a table is shown inline: the row is the picture, at a width that fits it
            page.set_viewport_size({"width": 2600, "height": 2000})
            row.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            row.screenshot(path=str(out))
        elif not row.get_by_text(SHOW_MARKDOWN).count():  # a plain entry: the page scrolled down to it, wide enough
            page.set_viewport_size({"width": 1900, "height": 1000})  # for a sentence of text (the verdict) to wrap
            row.evaluate("element => element.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(500)
            page.screenshot(path=str(out))
        else:  # a plot, behind the markdown entry's link
            row.get_by_text(SHOW_MARKDOWN).first.click()
            page.get_by_role("dialog").locator("img, table").first.wait_for(timeout=15000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(out))
        browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3311")
    parser.add_argument("--asset", default="sample/selected_subset")
    parser.add_argument("--partition", default="zip", help="the partition to open; empty for none")
    parser.add_argument("--key", default="ratio_histogram", help="the metadata entry whose plot to open")
    parser.add_argument("--out", default="out/selected_subset.png", type=Path)
    parser.add_argument("--overview", action="store_true", help="the asset's overview page instead of an entry")
    args = parser.parse_args()
    if args.overview:
        print(overview(args.url, args.asset, args.out))
    else:
        print(screenshot(args.url, args.asset, args.partition, args.key, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
