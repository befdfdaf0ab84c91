"""The web view end to end: a real worker on the real broker stores traces sent with the SDK,
then headless Chromium searches, opens a trace from the results and finds the waterfall and the
critical path rendered; the services and graph pages show the final windows.

With TRACEPIPE_WEB_SCREENSHOT=<path> the test also saves the trace page of a web-shop checkout
(its slowest span's details open) as the README's screenshot.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from streams.broker.topics import TopicNames
from streams.generate.generator import TraceGenerator
from streams.generate.incident import parse_incident
from streams.generate.topology import default_topology
from streams.model.span import Span, make_span
from streams.query import quote, worker_url
from streams.sdk import SpanProducer
from streams.worker_process import WorkerProcess
from tests.integration.isolated import running_worker
from tests.integration.web.browser import chromium

pytestmark = pytest.mark.integration

SCREENSHOT_ENV = "TRACEPIPE_WEB_SCREENSHOT"
SCREENSHOT_WIDTH = 1000
MS = 1_000_000
TRACE = "5eb0a11d" * 4
ROOT, CACHE, CHARGE, LEDGER = "a1" * 8, "b2" * 8, "c3" * 8, "d4" * 8
WEBSHOP_TRACES = 40


def basket_trace(start_ns: int) -> list[Span]:
    """storefront GET /basket (100 ms) calls pricing (1-5 ms) and billing charge (2-90 ms,
    failed), which writes the ledger (10-80 ms): the critical path is storefront, billing,
    ledger, billing, storefront; pricing runs in parallel, off it."""
    return [
        make_span(
            TRACE, ROOT, "GET /basket", "storefront", start_ns, start_ns + 100 * MS, kind="SERVER"
        ),
        make_span(
            TRACE,
            CACHE,
            "quote",
            "pricing",
            start_ns + 1 * MS,
            start_ns + 5 * MS,
            parent_span_id=ROOT,
        ),
        make_span(
            TRACE,
            CHARGE,
            "charge",
            "billing",
            start_ns + 2 * MS,
            start_ns + 90 * MS,
            parent_span_id=ROOT,
            status_code="ERROR",
            status_message="card declined",
            attributes={"payment.amount": 42},
        ),
        make_span(
            TRACE,
            LEDGER,
            "append",
            "ledger",
            start_ns + 10 * MS,
            start_ns + 80 * MS,
            parent_span_id=CHARGE,
        ),
    ]


@pytest.fixture
def web_worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker that assembles a trace 1 s after its last span and finalises 1 s windows
    2 s after them, so every page has data within seconds."""
    with running_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="1000",
        TRACEPIPE_ASSEMBLY_SWEEP_INTERVAL_MS="200",
        TRACEPIPE_AGGREGATION_WINDOW_MS="1000",
        TRACEPIPE_AGGREGATION_ALLOWED_LATENESS_MS="2000",
        TRACEPIPE_AGGREGATION_PARTITION_IDLE_MS="2000",
        TRACEPIPE_AGGREGATION_EMIT_INTERVAL_MS="200",
    ) as proc:
        yield proc


def produce(worker: WorkerProcess) -> list[str]:
    """Send the basket trace and web-shop traces (seeded); return the web-shop trace ids."""
    start = time.time_ns() - 2_000 * MS
    # The checkout (generated last, at the generator's origin) gets a failed asynchronous
    # consumer: an error on the README's picture that fails no caller.
    generator = TraceGenerator(
        default_topology(),
        seed=11,
        incidents=[parse_incident("shipping/ShipOrder:errors=100%@0s-1s")],
    )
    webshop = [generator.trace(start + i * 20 * MS) for i in range(WEBSHOP_TRACES)]
    webshop.append(generator.trace(start, entrypoint="frontend/POST /checkout"))
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    with SpanProducer(worker.settings.kafka.bootstrap, topic) as producer:
        producer.send_many(basket_trace(start))
        for spans in webshop:
            producer.send_many(spans)
        assert producer.flush() == 0
    return [spans[0]["trace_id"] for spans in webshop]


def count(worker: WorkerProcess, sql: str) -> int:
    return int(worker.reader().query_dicts(sql)[0]["n"])


def test_search_open_a_trace_and_see_its_waterfall_and_critical_path(
    web_worker: WorkerProcess, tmp_path: Path
) -> None:
    worker = web_worker
    webshop = produce(worker)
    expected = ", ".join(quote(t) for t in [TRACE, *webshop])
    worker.wait_for(
        lambda: (
            count(
                worker,
                f"SELECT count() AS n FROM tracepipe_traces FINAL WHERE TraceId IN ({expected})",
            )
            == len(webshop) + 1
        ),
        120,
        "every trace assembled and stored",
    )
    base = worker_url(worker.settings)
    with chromium(tmp_path / "chromium") as browser:
        wait = WebDriverWait(browser, 30)
        browser.get(f"{base}/ui/")
        service = browser.find_element(By.NAME, "service")
        service.send_keys("storefront")
        browser.find_element(By.CSS_SELECTOR, "form.query button[type=submit]").click()
        wait.until(seen.url_contains("service=storefront"))
        links = browser.find_elements(By.CSS_SELECTOR, "a.trace-link")
        assert [a.text for a in links] == ["storefront: GET /basket"]
        links[0].click()

        wait.until(seen.url_contains(f"/ui/trace/{TRACE}"))
        rows = browser.find_elements(By.CSS_SELECTOR, ".waterfall details.span")
        assert [r.get_attribute("data-span-id") for r in rows] == [ROOT, CACHE, CHARGE, LEDGER]
        critical = browser.find_elements(By.CSS_SELECTOR, ".waterfall details.span.critical")
        assert {r.get_attribute("data-span-id") for r in critical} == {ROOT, CHARGE, LEDGER}
        # Rendered, not just present: bars and critical-path stretches have width where the
        # layout put them, and the stretches are drawn in the critical-path colour.
        by_id = {r.get_attribute("data-span-id"): r for r in rows}
        timeline = by_id[ROOT].find_element(By.CSS_SELECTOR, ".span-timeline").rect["width"]
        assert timeline > 300
        ledger_bar = by_id[LEDGER].find_element(By.CSS_SELECTOR, ".span-bar")
        assert ledger_bar.is_displayed()
        assert ledger_bar.rect["width"] == pytest.approx(0.7 * timeline, abs=2)
        (ledger_stretch,) = by_id[LEDGER].find_elements(By.CSS_SELECTOR, ".cp-segment")
        assert ledger_stretch.rect["x"] == pytest.approx(ledger_bar.rect["x"], abs=1)
        assert ledger_stretch.rect["width"] == pytest.approx(ledger_bar.rect["width"], abs=1)
        assert ledger_stretch.value_of_css_property("background-color") == "rgba(17, 24, 39, 1)"
        stretches = browser.find_elements(By.CSS_SELECTOR, ".cp-segment")
        assert len(stretches) == 5 and all(s.rect["width"] >= 2 for s in stretches)
        assert not by_id[CACHE].find_elements(By.CSS_SELECTOR, ".cp-segment")

        # Clicking a row opens its details.
        detail = by_id[CHARGE].find_element(By.CSS_SELECTOR, ".span-detail")
        assert not detail.is_displayed()
        by_id[CHARGE].find_element(By.TAG_NAME, "summary").click()
        wait.until(lambda _: detail.is_displayed())
        assert "ERROR: card declined" in detail.text and "payment.amount" in detail.text

        # A well-formed id with nothing stored (all zeros is not a trace id at all).
        browser.get(f"{base}/ui/trace/{'1' * 32}")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Trace not found"
        assert "No spans are stored" in browser.find_element(By.CSS_SELECTOR, ".problem").text

        check_services_and_graph(worker, browser, wait, base)
        screenshot = os.environ.get(SCREENSHOT_ENV, "").strip()
        if screenshot:
            save_trace_screenshot(browser, wait, base, webshop[-1], Path(screenshot))


def check_services_and_graph(
    worker: WorkerProcess,
    browser: webdriver.Chrome,
    wait: WebDriverWait[webdriver.Chrome],
    base: str,
) -> None:
    """Once final windows are stored, the services page has the web shop's RED rows and the
    graph page draws its services and calls."""
    worker.wait_for(
        lambda: (
            count(
                worker, "SELECT count() AS n FROM tracepipe_latency WHERE ServiceName = 'frontend'"
            )
            > 0
            and count(worker, "SELECT count() AS n FROM tracepipe_edges WHERE Client = 'frontend'")
            > 0
        ),
        120,
        "final latency and edge windows",
    )
    browser.get(f"{base}/ui/services")
    first_cells = [
        row.find_element(By.TAG_NAME, "td").text
        for row in browser.find_elements(By.CSS_SELECTOR, "table.data tbody tr")
    ]
    assert {"frontend", "checkout", "storefront"} <= set(first_cells)
    browser.get(f"{base}/ui/graph")
    frontend = wait.until(
        seen.visibility_of_element_located((By.CSS_SELECTOR, 'g.node[data-service="frontend"]'))
    )
    assert frontend.rect["width"] > 50
    calls = browser.find_elements(By.CSS_SELECTOR, 'g.edge[data-client="frontend"]')
    assert {c.get_attribute("data-server") for c in calls} >= {"checkout"}


def save_trace_screenshot(
    browser: webdriver.Chrome,
    wait: WebDriverWait[webdriver.Chrome],
    base: str,
    trace_id: str,
    path: Path,
) -> None:
    """The README's picture: a web-shop checkout, its longest critical-path span's details open."""
    browser.get(f"{base}/ui/trace/{trace_id}")
    rows = wait.until(
        seen.presence_of_all_elements_located((By.CSS_SELECTOR, ".waterfall details.span"))
    )

    def critical_width(row: WebElement) -> float:
        return sum(
            float(s.rect["width"]) for s in row.find_elements(By.CSS_SELECTOR, ".cp-segment")
        )

    slowest = max(rows, key=critical_width)
    slowest.find_element(By.TAG_NAME, "summary").click()
    detail = slowest.find_element(By.CSS_SELECTOR, ".span-detail")
    wait.until(lambda _: detail.is_displayed())
    # As wide as a README shows an image unscaled, as tall as the page.
    browser.set_window_size(SCREENSHOT_WIDTH, 1000)
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(SCREENSHOT_WIDTH, height)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(path))
