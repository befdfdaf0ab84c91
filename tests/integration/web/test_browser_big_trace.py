"""A 5,000-span trace page in headless Chromium against a real worker on the real broker, clicked
through: it opens collapsed with only the rows that show made, an error origin's link reveals its
span deep in a collapsed subtree, a span's details load when it opens (not before), find reaches
attributes of spans in collapsed subtrees whose details never loaded, expand and collapse all,
and ``?span=`` opens a deep span with its details. Prints the page's load, details and find
times (the report's, not asserted: the machine is shared)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from streams.broker.topics import TopicNames
from streams.query import quote, worker_url
from streams.sdk import SpanProducer
from streams.worker_process import WorkerProcess
from tests.integration.web.browser import chromium
from tests.unit.query.web.test_trace_tools import CALLS, big_trace

pytestmark = pytest.mark.integration

TRACE = "b1" * 16
FOUND_ROW = 4321
"""The leaf whose ``db.row`` attribute find looks for (leaves are numbered from 10,000)."""


def leaf(n: int) -> str:
    """The span id of big_trace's `n`-th leaf."""
    return f"{10_000 + n:016x}"


def made_rows(browser: webdriver.Chrome) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, ".waterfall details.span")


def shown_rows(browser: webdriver.Chrome) -> list[str]:
    return browser.execute_script(  # type: ignore[no-any-return]
        "return Array.prototype.map.call(document.querySelectorAll("
        "'.waterfall details.span:not([hidden])'), function (r) { return r.dataset.spanId; });"
    )


def timed_find(browser: webdriver.Chrome, query: str) -> tuple[str, float]:
    """Types `query` into find; the count it settles on and the ms it took."""
    got: list[Any] = browser.execute_async_script(
        "var done = arguments[arguments.length - 1], q = arguments[0];"
        "var f = document.getElementById('find'), c = document.getElementById('find-count');"
        "var t = performance.now(); f.focus(); f.value = q; f.dispatchEvent(new Event('input'));"
        "(function poll() {"
        "  if (/spans match/.test(c.textContent)) { done([c.textContent, performance.now() - t]); }"
        "  else { setTimeout(poll, 5); }"
        "})();",
        query,
    )
    return str(got[0]), float(got[1])


def test_a_5000_span_trace_stays_light_and_every_tool_works(
    quick_worker: WorkerProcess, tmp_path: Any
) -> None:
    worker = quick_worker
    spans = big_trace(TRACE)
    failed = spans[-1]
    failed["status_code"], failed["status_message"] = "ERROR", "disk full"
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    with SpanProducer(worker.settings.kafka.bootstrap, topic) as producer:
        producer.send_many(spans)
        assert producer.flush() == 0
    worker.wait_for(
        lambda: (
            int(
                worker.reader().query_dicts(
                    f"SELECT count() AS n FROM otel_traces FINAL WHERE TraceId = {quote(TRACE)}"
                )[0]["n"]
            )
            == 5_000
        ),
        120,
        "every span stored",
    )
    base = worker_url(worker.settings)
    with chromium(tmp_path / "chromium") as browser:
        wait = WebDriverWait(browser, 30, poll_frequency=0.05)
        browser.get(f"{base}/ui/trace/{TRACE}")
        loaded = browser.execute_script(
            "var n = performance.getEntriesByType('navigation')[0];"
            "return [n.responseEnd - n.requestStart, n.loadEventEnd - n.requestStart,"
            " n.transferSize];"
        )
        # Collapsed below the calls, and only the rows that show are made.
        assert len(made_rows(browser)) == 1 + CALLS
        assert len(shown_rows(browser)) == 1 + CALLS
        root = made_rows(browser)[0]
        assert root.find_elements(By.CSS_SELECTOR, ".cp-segment")  # the critical path

        # The error origin's link reveals its span, deep in a collapsed subtree.
        failed_id = failed["span_id"]
        browser.find_element(By.CSS_SELECTOR, f"a[href='#span-{failed_id}']").click()
        origin = wait.until(lambda b: b.find_element(By.ID, f"span-{failed_id}"))
        wait.until(lambda _: origin.is_displayed())
        assert {"error", "error-origin"} <= set((origin.get_attribute("class") or "").split())
        assert origin.find_element(By.CSS_SELECTOR, ".err-badge").text == "error origin"

        # Its details are not in the page: they load when the span opens.
        detail = origin.find_element(By.CSS_SELECTOR, ".span-detail")
        assert detail.get_attribute("innerHTML") == "" and not detail.is_displayed()
        started = time.perf_counter()
        origin.find_element(By.TAG_NAME, "summary").click()
        wait.until(lambda _: detail.is_displayed())
        details_ms = (time.perf_counter() - started) * 1000
        assert "ERROR: disk full" in detail.text and "db.row" in detail.text
        assert "critical path" in detail.text and failed_id in detail.text

        # Collapse all, then find an attribute value of a leaf whose details never loaded.
        browser.find_element(By.ID, "collapse-all").click()
        wait.until(lambda _: shown_rows(browser) == [spans[0]["span_id"]])
        count, find_ms = timed_find(browser, str(FOUND_ROW))
        assert count == "1 of 5000 spans match"
        match = browser.find_element(By.CSS_SELECTOR, "details.span.match")
        assert match.get_attribute("data-span-id") == leaf(FOUND_ROW) and match.is_displayed()
        assert len(shown_rows(browser)) == 4  # root, call, callee, the leaf
        count, _ = timed_find(browser, "svc-7")  # services still found, texts loaded once
        assert count == "11 of 5000 spans match"
        find = browser.find_element(By.ID, "find")
        find.clear()
        find.send_keys(" ")
        wait.until(lambda _: browser.find_element(By.ID, "find-count").text == "")
        assert shown_rows(browser) == [spans[0]["span_id"]]

        # Expand all makes and shows every row; collapse all hides them again.
        browser.find_element(By.ID, "expand-all").click()
        wait.until(lambda _: len(shown_rows(browser)) == 5_000)
        assert len(made_rows(browser)) == 5_000
        browser.find_element(By.ID, "collapse-all").click()
        wait.until(lambda _: len(shown_rows(browser)) == 1)

        # ?span= opens a deep span, in sight, its details loaded.
        browser.get(f"{base}/ui/trace/{TRACE}?span={leaf(7)}")
        opened = wait.until(lambda b: b.find_element(By.ID, f"span-{leaf(7)}"))
        assert opened.is_displayed() and opened.get_attribute("open") is not None
        opened_detail = opened.find_element(By.CSS_SELECTOR, ".span-detail")
        wait.until(lambda _: opened_detail.is_displayed())
        assert "db.row" in opened_detail.text and leaf(7) in opened_detail.text
    print(
        f"\n5,000-span trace page: last byte {loaded[0]:.0f} ms, load {loaded[1]:.0f} ms, "
        f"{loaded[2]:,} bytes; a span's details {details_ms:.0f} ms (with WebDriver's polling); "
        f"find (texts fetched) {find_ms:.0f} ms"
    )
