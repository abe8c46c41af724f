"""What a user sees in Dagster's UI, in a real browser: a small graph of the bundled sample's data (ZIP and random at
three seeds, a training run each with the built-in trainer at its smallest, the law) materialized into a temporary
DAGSTER_HOME, ``dagster-webserver`` started on it, and headless chromium on a subset's page and on the law's page.

Skipped where playwright or a chromium is missing (``apt-get install chromium``; ``pip install -e .[screenshots]``).
No browser is downloaded: playwright drives Debian's chromium. The webserver runs in a session of its own and is
stopped with everything it started before the test ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from entropy_assets.dagster import TrainingSettings
from entropy_assets.dagster.events import required
from entropy_assets.stages import LawResult, SubsetResult

from .test_pipeline import POOL, RAW, SCORES, SUBSET, Graph, settings

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "dagster_project" / "data" / "sample"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
TRAINING = dg.AssetKey(["t", "training_run"])
LAW = dg.AssetKey(["t", "entropy_law"])
PARTITIONS = ("zip", "random", "random_seed1", "random_seed2")
TINY = {"context": 64, "d_model": 32, "layers": 1, "heads": 2, "batch_size": 8, "eval_sequences": 8}

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e .[screenshots])"
)
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="no chromium (apt-get install chromium)")


def materialize(root: Path) -> Path:
    """The graph on two of the sample's files (250 records, 40 held out for evaluation), every partition selected
    and trained for 5 steps, and the law: into ``root``'s DAGSTER_HOME; returns the code location's file."""
    data = root / "data"
    data.mkdir()
    for name in ("c4_demo_100.jsonl", "self_instruct_user_oriented_150.jsonl"):
        shutil.copy(SAMPLE / name, data)
    training = TrainingSettings(steps=5, eval_samples=40, builtin=TINY)
    pipeline = settings(data, methods=("zip", "random"), random_seeds=3, budgets=(40,), training=training)
    home = root / "home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        graph = Graph(pipeline, root / "store", instance)
        graph.run([RAW])
        graph.run([POOL, SCORES])
        for partition in PARTITIONS:
            graph.run([SUBSET, TRAINING], partition)
        graph.run([LAW])
    location = root / "definitions.py"
    location.write_text(
        "from entropy_assets.dagster import EntropyStorage, SelectionPipeline, selection_pipeline_defs\n\n"
        f"settings = SelectionPipeline.model_validate_json({pipeline.model_dump_json()!r})\n"
        f"defs = selection_pipeline_defs(settings, storage=EntropyStorage(base_path={str(root / 'store')!r}))\n",
        encoding="utf-8",
    )
    return location


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def webserver(location: Path, home: Path) -> Iterator[str]:
    """``dagster-webserver`` on ``location`` and the instance at ``home``, on a free port, until the block ends: it
    and its code server are stopped as one process group, and none of them may outlive the block."""
    port = free_port()
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": path}
    command = [sys.executable, "-m", "dagster_webserver", "-f", str(location), "-h", "127.0.0.1", "-p", str(port)]
    log = (home / "webserver.log").open("wb")
    server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (home / "webserver.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the webserver did not answer within 120 s"
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/server_info", timeout=2) as answer:
                if answer.status == 200:
                    break
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        stop_group(server.pid)


def stop_group(group: int) -> None:
    """Kill what is left of process group ``group`` (the code server, if it outlived the webserver) and wait until
    none of it is left. The test session is the subreaper of what it starts (conftest), so the group's orphans
    end as this process's children: they are reaped here, or a dead one would stay in the group as a zombie."""
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(group, signal.SIGKILL if time.monotonic() > deadline - 5 else signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):  # reap the group's dead children (waitpid on -group)
            while os.waitpid(-group, os.WNOHANG)[0]:
                pass
        assert time.monotonic() < deadline, f"process group {group} outlived the webserver"
        time.sleep(0.2)


def open_events(page: sync_api.Page, url: str, asset: str, partition: str | None, key: str) -> sync_api.Locator:
    """The asset's events page at its latest materialization (of ``partition``), and the metadata row of ``key``."""
    query = f"&partition={partition}" if partition else ""
    page.goto(f"{url}/assets/{asset}?view=events{query}", wait_until="networkidle")
    entry = page.get_by_text(key, exact=True).first
    entry.wait_for(timeout=30000)
    return page.locator("tr", has=entry).first


def as_shown(value: object) -> str:
    """A table cell as the UI writes it (JavaScript's ``toString``): ``1`` for 1.0, nothing for a null."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def table_text(row: sync_api.Locator) -> tuple[list[str], list[list[str]]]:
    """The headers and the cells of the table shown in a metadata row."""
    table = row.locator("table").first
    table.wait_for(timeout=15000)
    headers = [text.strip() for text in table.locator("th").all_inner_texts()]
    cells = [[c.strip() for c in r.locator("td").all_inner_texts()] for r in table.locator("tbody tr").all()]
    return headers, cells


def shown_plot(page: sync_api.Page, row: sync_api.Locator) -> int:
    """Open the plot behind a metadata row's "[Show Markdown]" link; the width in pixels of the picture shown."""
    row.get_by_text("[Show Markdown]").first.click()
    image = page.get_by_role("dialog").locator("img").first
    image.wait_for(timeout=15000)
    page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=image.element_handle())
    width = int(image.evaluate("image => image.naturalWidth"))
    page.get_by_role("button", name="Close").click()
    return width


def test_a_subset_and_the_law_show_their_tables_and_plots_in_the_browser(tmp_path: Path) -> None:
    location = materialize(tmp_path)
    home = tmp_path / "home"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        subset = required(instance, SUBSET, SubsetResult, "zip")
        law = required(instance, LAW, LawResult)
    assert subset.composition is not None and law.verdict_rows

    with webserver(location, home) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # A fresh profile first meets Dagster's community modal, whenever it appears: skip it.
            skip = page.get_by_role("button", name="Skip")
            page.add_locator_handler(skip, lambda button: button.click())

            row = open_events(page, url, "t/selected_subset", "zip", "composition")
            headers, cells = table_text(row)
            assert headers == ["facet", "value", "pool share", "subset share", "difference"]
            shown = {(cell[0], cell[1]): cell[2:] for cell in cells}
            for facet, mixed in subset.composition.items():
                for value, share in mixed.subset.items():
                    assert shown[(facet, value)][1] == as_shown(share), (facet, value)
            assert shown_plot(page, open_events(page, url, "t/selected_subset", "zip", "ratio_histogram")) > 400

            row = open_events(page, url, "t/entropy_law", None, "verdict")
            headers, cells = table_text(row)
            assert headers == ["method", "budget", "Z", "random Z", "random sd", "distance (sd)", "verdict", "runs"]
            (verdict,) = law.verdict_rows
            assert cells == [[as_shown(verdict[name]) for name in headers]]
            assert shown_plot(page, open_events(page, url, "t/entropy_law", None, "loss_vs_ratio")) > 400
        finally:
            browser.close()
