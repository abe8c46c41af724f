"""Screenshot a page of the built documentation site in headless chromium, served over HTTP as a reader gets it.

Usage (after ``mkdocs build``, which writes ``site/``)::

    .venv/bin/python scripts/docs_screenshot.py --page getting-started/ --out docs/docs_getting_started.png

Needs Debian's ``chromium`` and playwright, as scripts/screenshot.py does.
"""

import argparse
import functools
import http.server
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright
from screenshot import CHROMIUM_ARGS


def screenshot(site: Path, page_path: str, out: Path, width: int, height: int) -> Path:
    """Serves ``site`` on a free local port and photographs ``page_path`` in a ``width`` x ``height`` window."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/{page_path}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url, wait_until="networkidle")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()
        server.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=Path("site"), help="the built site (default: site)")
    parser.add_argument("--page", default="getting-started/", help="the page's path within the site")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    print(screenshot(args.site, args.page, args.out, args.width, args.height))


if __name__ == "__main__":
    main()
