"""The search page in headless Chromium, with clicks: a real worker on the real broker stores
traces sent with the SDK; choosing a service refills the operation dropdown in place, a tag
filter narrows the results to the one trace carrying the tag, the result lists its span counts
per service, and clicking the trace's point on the scatter plot opens its trace page.

With TRACEPIPE_WEB_SEARCH_SCREENSHOT=<path> the test also saves the search page over the
web-shop traces (the README's screenshot of the search page).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait

from streams.broker.topics import TopicNames
from streams.generate.generator import TraceGenerator
from streams.generate.incident import parse_incident
from streams.generate.topology import default_topology
from streams.model.span import Span, make_span
from streams.query import quote, worker_url
from streams.sdk import SpanProducer
from streams.worker_process import WorkerProcess
from tests.integration.web.browser import chromium

pytestmark = pytest.mark.integration

SCREENSHOT_ENV = "TRACEPIPE_WEB_SEARCH_SCREENSHOT"
SCREENSHOT_WIDTH = 1200
SCREENSHOT_HEIGHT = 1100
MS = 1_000_000
ACME, GLOBEX = "ac" * 16, "61" * 16
WEBSHOP_TRACES = 40


def order_trace(trace_id: str, tenant: str, start_ns: int, duration_ms: int) -> list[Span]:
    """till POST /order (tenant in its attributes) calls stock reserve twice and vouchers
    redeem: 4 spans, till 1, stock 2, vouchers 1."""
    root_id = trace_id[:16]

    def child(n: int, name: str, service: str) -> Span:
        return make_span(
            trace_id,
            f"{n:016x}",
            name,
            service,
            start_ns + n * MS,
            start_ns + (n + 2) * MS,
            parent_span_id=root_id,
        )

    root = make_span(
        trace_id,
        root_id,
        "POST /order",
        "till",
        start_ns,
        start_ns + duration_ms * MS,
        kind="SERVER",
        attributes={"tenant": tenant},
    )
    return [
        root,
        child(1, "reserve", "stock"),
        child(2, "reserve", "stock"),
        child(3, "redeem", "vouchers"),
    ]


def produce(worker: WorkerProcess) -> list[str]:
    """Send the two order traces and web-shop traces (seeded); return every trace id."""
    start = time.time_ns() - 5_000 * MS
    generator = TraceGenerator(
        default_topology(),
        seed=5,
        incidents=[parse_incident("currency:errors=25%@0s-10s")],
    )
    webshop = [generator.trace(start + i * 100 * MS) for i in range(WEBSHOP_TRACES)]
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    with SpanProducer(worker.settings.kafka.bootstrap, topic) as producer:
        producer.send_many(order_trace(ACME, "acme", start + 1_000 * MS, 30))
        producer.send_many(order_trace(GLOBEX, "globex", start + 3_000 * MS, 60))
        for spans in webshop:
            producer.send_many(spans)
        assert producer.flush() == 0
    return [ACME, GLOBEX, *(spans[0]["trace_id"] for spans in webshop)]


def operation_options(browser: webdriver.Chrome) -> list[str]:
    return [o.text for o in Select(browser.find_element(By.NAME, "operation")).options]


def test_choose_a_service_filter_by_tag_and_open_a_trace_from_the_plot(
    quick_worker: WorkerProcess, tmp_path: Path
) -> None:
    worker = quick_worker
    trace_ids = produce(worker)
    expected = ", ".join(quote(t) for t in trace_ids)
    worker.wait_for(
        lambda: (
            int(
                worker.reader().query_dicts(
                    f"SELECT count() AS n FROM tracepipe_traces FINAL WHERE TraceId IN ({expected})"
                )[0]["n"]
            )
            == len(trace_ids)
        ),
        120,
        "every trace assembled and stored",
    )
    base = worker_url(worker.settings)
    with chromium(tmp_path / "chromium") as browser:
        wait = WebDriverWait(browser, 30)
        browser.get(f"{base}/ui/")
        services = [o.text for o in Select(browser.find_element(By.NAME, "service")).options]
        assert services[0] == "any" and {"till", "stock", "vouchers", "frontend"} <= set(services)
        assert {"POST /order", "reserve", "redeem"} <= set(operation_options(browser))

        # Choosing a service refills the operation dropdown in place, without a page load.
        page = browser.find_element(By.TAG_NAME, "html")
        Select(browser.find_element(By.NAME, "service")).select_by_visible_text("stock")
        assert operation_options(browser) == ["any", "reserve"]
        Select(browser.find_element(By.NAME, "service")).select_by_visible_text("till")
        assert operation_options(browser) == ["any", "POST /order"]
        assert browser.find_element(By.TAG_NAME, "html") == page  # still the same document

        Select(browser.find_element(By.NAME, "operation")).select_by_visible_text("POST /order")
        browser.find_element(By.NAME, "since").clear()
        browser.find_element(By.NAME, "since").send_keys("15m")
        browser.find_element(By.CSS_SELECTOR, "form.query button[type=submit]").click()
        wait.until(seen.url_contains("operation=POST"))
        assert len(browser.find_elements(By.CSS_SELECTOR, "a.trace-link")) == 2
        assert Select(browser.find_element(By.NAME, "service")).first_selected_option.text == "till"

        # A tag narrows the results to the trace whose span carries it.
        tags = browser.find_element(By.NAME, "tags")
        tags.send_keys("tenant=acme")
        browser.find_element(By.CSS_SELECTOR, "form.query button[type=submit]").click()
        wait.until(seen.url_contains("tags=tenant%3Dacme"))
        (result,) = browser.find_elements(By.CSS_SELECTOR, "a.trace-link")
        assert (result.get_attribute("href") or "").endswith(f"/ui/trace/{ACME}")
        row = browser.find_element(By.CSS_SELECTOR, "table.data tbody tr")
        chips = [" ".join(c.text.split()) for c in row.find_elements(By.CSS_SELECTOR, ".svc")]
        assert chips == ["stock 2", "till 1", "vouchers 1"]

        # Its point on the scatter plot: drawn where the plot is, naming the trace on hover;
        # a click opens the trace page.
        (point,) = browser.find_elements(By.CSS_SELECTOR, ".scatter a.point")
        assert point.get_attribute("data-trace-id") == ACME
        title = point.find_element(By.TAG_NAME, "title").get_attribute("textContent") or ""
        assert title.startswith("till: POST /order\n30.0 ms, 4 spans, 3 services")
        dot = point.find_element(By.TAG_NAME, "circle")
        assert dot.is_displayed() and dot.rect["width"] > 4
        dot.click()
        wait.until(seen.url_contains(f"/ui/trace/{ACME}"))
        rows = browser.find_elements(By.CSS_SELECTOR, ".waterfall details.span")
        assert len(rows) == 4

        # Errors are marked on the plot: the failed web-shop traces are red diamonds.
        browser.get(f"{base}/ui/?service=frontend&since=15m&limit=100")
        points = browser.find_elements(By.CSS_SELECTOR, ".scatter a.point")
        assert len(points) == WEBSHOP_TRACES
        failed = browser.find_elements(By.CSS_SELECTOR, ".scatter a.point.error path")
        assert failed and failed[0].value_of_css_property("fill") == "rgb(198, 40, 40)"
        screenshot = os.environ.get(SCREENSHOT_ENV, "").strip()
        if screenshot:
            # Every web-shop trace on the plot; the picture shows the form, the plot and the
            # first results.
            browser.get(f"{base}/ui/?service=frontend&since=15m&limit=100")
            browser.set_window_size(SCREENSHOT_WIDTH, SCREENSHOT_HEIGHT)
            path = Path(screenshot)
            path.parent.mkdir(parents=True, exist_ok=True)
            assert browser.save_screenshot(str(path))
