"""The trace page's tools in headless Chromium against a real worker on the real broker:
collapse a subtree and collapse/expand all, find within the trace, download the trace as OTLP
JSON and produce the file back (the same spans stored), compare with another trace; and a
5,000-span trace opening collapsed, with its load and find times printed.

With TRACEPIPE_TRACE_SCREENSHOTS=<dir> the test also saves the trace page with a subtree
collapsed and a find's match highlighted as <dir>/trace-find.png, and the compare page as
<dir>/trace-compare.png (the README's pictures).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from streams.broker.topics import TopicNames
from streams.ingest.produce import produce_payloads
from streams.model.span import Span, make_span
from streams.query import quote, worker_url
from streams.sdk import SpanProducer
from streams.sink.spans import OTEL_TRACES_COLUMNS, SOURCE_FORMAT_ATTRIBUTE
from streams.worker_process import WorkerProcess
from tests.integration.web.browser import chromium
from tests.integration.web.test_browser_big_trace import timed_find
from tests.unit.query.web.test_trace_tools import BIG, big_trace

pytestmark = pytest.mark.integration

SCREENSHOTS_ENV = "TRACEPIPE_TRACE_SCREENSHOTS"
MS = 1_000_000
A, B = "0a11ce" * 5 + "0a", "0b0b00" * 5 + "0b"
ROOT, QUOTE, CHARGE, LEDGER, AUDIT = "a1" * 8, "b2" * 8, "c3" * 8, "d4" * 8, "e5" * 8


def basket(trace_id: str, start_ns: int, later: bool = False) -> list[Span]:
    """storefront GET /basket calls pricing quote and billing charge, which appends to the
    ledger. `later`: no pricing call, the ledger write takes 60 ms more and billing audits."""
    end = 160 if later else 100
    spans = [
        make_span(trace_id, ROOT, "GET /basket", "storefront", start_ns, start_ns + end * MS),
        make_span(
            trace_id,
            CHARGE,
            "charge",
            "billing",
            start_ns + 2 * MS,
            start_ns + (end - 10) * MS,
            parent_span_id=ROOT,
            kind="CLIENT",
            attributes={"card.brand": "visa"},
        ),
        make_span(
            trace_id,
            LEDGER,
            "append",
            "ledger",
            start_ns + 10 * MS,
            start_ns + (end - 20) * MS,
            parent_span_id=CHARGE,
        ),
    ]
    if later:
        spans.append(
            make_span(
                trace_id,
                AUDIT,
                "audit",
                "billing",
                start_ns + 141 * MS,
                start_ns + 149 * MS,
                parent_span_id=CHARGE,
            )
        )
    else:
        spans.append(
            make_span(
                trace_id,
                QUOTE,
                "quote",
                "pricing",
                start_ns + 1 * MS,
                start_ns + 5 * MS,
                parent_span_id=ROOT,
            )
        )
    return spans


def count(worker: WorkerProcess, sql: str) -> int:
    return int(worker.reader().query_dicts(sql)[0]["n"])


def stored_rows(worker: WorkerProcess, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans as stored (every column; the source format taken out)."""
    columns = [c for c in OTEL_TRACES_COLUMNS if c != "SpanAttributes"]
    return worker.reader().query_dicts(
        f"SELECT {', '.join(columns)}, mapFilter((k, v) -> k != "
        f"{quote(SOURCE_FORMAT_ATTRIBUTE)}, SpanAttributes) AS Attributes "
        f"FROM otel_traces FINAL WHERE TraceId = {quote(trace_id)} ORDER BY SpanId"
    )


def visible_rows(browser: webdriver.Chrome) -> list[str]:
    return [
        r.get_attribute("data-span-id") or ""
        for r in browser.find_elements(By.CSS_SELECTOR, ".waterfall details.span")
        if r.is_displayed()
    ]


def test_collapse_find_download_and_compare(quick_worker: WorkerProcess, tmp_path: Path) -> None:
    worker = quick_worker
    start = time.time_ns() - 2_000 * MS
    topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).spans
    with SpanProducer(worker.settings.kafka.bootstrap, topic) as producer:
        producer.send_many(basket(A, start))
        producer.send_many(basket(B, start + 300 * MS, later=True))
        producer.send_many(big_trace())
        assert producer.flush() == 0
    ids = ", ".join(quote(t) for t in (A, B, BIG))
    worker.wait_for(
        lambda: (
            count(worker, f"SELECT count() AS n FROM otel_traces FINAL WHERE TraceId IN ({ids})")
            == 8 + 5_000
        ),
        120,
        "every span stored",
    )
    base = worker_url(worker.settings)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with chromium(tmp_path / "chromium") as browser:
        browser.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        wait = WebDriverWait(browser, 30)
        browser.get(f"{base}/ui/trace/{A}")
        assert visible_rows(browser) == [ROOT, QUOTE, CHARGE, LEDGER]

        # Collapse the charge's subtree with its arrow: the ledger goes, the row stays closed.
        charge = browser.find_element(By.ID, f"span-{CHARGE}")
        charge.find_element(By.CSS_SELECTOR, "button.twisty").click()
        wait.until(lambda _: visible_rows(browser) == [ROOT, QUOTE, CHARGE])
        assert charge.get_attribute("open") is None
        assert "collapsed" in (charge.get_attribute("class") or "")
        browser.find_element(By.ID, "collapse-all").click()
        wait.until(lambda _: visible_rows(browser) == [ROOT])
        browser.find_element(By.ID, "expand-all").click()
        wait.until(lambda _: visible_rows(browser) == [ROOT, QUOTE, CHARGE, LEDGER])
        charge.find_element(By.CSS_SELECTOR, "button.twisty").click()
        wait.until(lambda _: visible_rows(browser) == [ROOT, QUOTE, CHARGE])

        # Find by an attribute value, then by a service: a match in a collapsed subtree shows
        # (the subtree stays collapsed for when the find is cleared).
        find = browser.find_element(By.ID, "find")
        find.send_keys("VISA")
        found = browser.find_element(By.ID, "find-count")
        wait.until(lambda _: found.text == "1 of 4 spans match")
        assert visible_rows(browser) == [ROOT, QUOTE, CHARGE]
        matches = browser.find_elements(By.CSS_SELECTOR, "details.span.match")
        assert [m.get_attribute("data-span-id") for m in matches] == [CHARGE]
        assert (
            matches[0]
            .find_element(By.TAG_NAME, "summary")
            .value_of_css_property("background-color")
            == "rgba(255, 244, 194, 1)"
        )
        shots = os.environ.get(SCREENSHOTS_ENV, "").strip()
        if shots:
            save_screenshot(browser, Path(shots) / "trace-find.png")
        find.clear()
        find.send_keys("ledger")
        wait.until(lambda _: found.text == "1 of 4 spans match")
        assert visible_rows(browser) == [ROOT, QUOTE, CHARGE, LEDGER]
        find.clear()
        find.send_keys("nothing-like-this")
        wait.until(lambda _: found.text == "0 of 4 spans match")
        assert not browser.find_elements(By.CSS_SELECTOR, "details.span.match")
        assert visible_rows(browser) == [ROOT, QUOTE, CHARGE]
        assert "collapsed" in (charge.get_attribute("class") or "")

        # Download, then send the file as `tracepipe produce` does: the same spans stored.
        before = stored_rows(worker, A)
        browser.find_element(By.CSS_SELECTOR, "a.download").click()
        saved = downloads / f"trace-{A}.json"
        wait.until(lambda _: saved.is_file() and saved.stat().st_size > 0)
        report = produce_payloads(saved.read_bytes(), worker.settings)
        assert report.spans_sent == 4 and not report.rejected
        worker.wait_for(
            lambda: (
                count(
                    worker,
                    f"SELECT count() AS n FROM otel_traces FINAL WHERE TraceId = {quote(A)} AND "
                    f"SpanAttributes[{quote(SOURCE_FORMAT_ATTRIBUTE)}] = 'otlp_json'",
                )
                == 4
            ),
            60,
            "the produced spans stored",
        )
        assert stored_rows(worker, A) == before

        # Compare with B through the page's field.
        browser.find_element(By.NAME, "b").send_keys(B)
        browser.find_element(By.CSS_SELECTOR, "form.compare button").click()
        wait.until(seen.url_contains("/ui/compare"))
        assert f"a={A}" in browser.current_url and f"b={B}" in browser.current_url
        path_table = browser.find_elements(By.CSS_SELECTOR, "table.data")[1]
        differences = {
            cells[0].text.replace("\n", "").replace(" ", ""): cells[6].text
            for row in path_table.find_elements(By.CSS_SELECTOR, "tbody tr")
            for cells in [row.find_elements(By.TAG_NAME, "td")]
        }
        assert differences == {
            "storefrontGET/basket": "slower",
            "billingcharge": "slower",
            "billingaudit": "added",
            "ledgerappend": "slower",
            "pricingquote": "removed",
        }
        if shots:
            save_screenshot(browser, Path(shots) / "trace-compare.png")

        check_big_trace(browser, wait, base)


def save_screenshot(browser: webdriver.Chrome, path: Path) -> None:
    """The whole page, 1000 px wide (as a README shows an image unscaled)."""
    browser.set_window_size(1000, 1000)
    height, chrome = browser.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    browser.set_window_size(1000, int(height) + int(chrome))
    assert browser.save_screenshot(str(path))
    browser.set_window_size(1400, 1000)


def check_big_trace(
    browser: webdriver.Chrome, wait: WebDriverWait[webdriver.Chrome], base: str
) -> None:
    """A 5,000-span trace opens with 21 rows showing; find reaches into collapsed subtrees.
    Prints the page's load figures (the report's, not asserted: the machine is shared)."""
    browser.get(f"{base}/ui/trace/{BIG}")
    assert len(visible_rows(browser)) == 21
    timing = browser.execute_script(
        "var n = performance.getEntriesByType('navigation')[0];"
        "return [n.responseStart - n.requestStart, n.responseEnd - n.requestStart,"
        " n.domContentLoadedEventEnd - n.requestStart, n.loadEventEnd - n.requestStart,"
        " n.transferSize];"
    )
    # The first find fetches the spans' attribute texts, then searches.
    found_text, spent = timed_find(browser, "svc-7")
    assert found_text == "11 of 5000 spans match"  # call 7 and its 10 callees, all collapsed
    matches = browser.find_elements(By.CSS_SELECTOR, "details.span.match")
    assert len(matches) == 11 and all(m.is_displayed() for m in matches)
    assert len(visible_rows(browser)) == 21 + 10  # the path to each match, no other leaf
    expand = browser.execute_script(
        "var t = performance.now(); document.getElementById('expand-all').click();"
        "return performance.now() - t;"
    )
    wait.until(
        lambda _: (
            browser.execute_script(
                "return document.querySelectorAll('.waterfall details.span:not([hidden])').length"
            )
            == 5_000
        )
    )
    print(
        f"\n5,000-span trace page: first byte {timing[0]:.0f} ms, last byte {timing[1]:.0f} ms, "
        f"DOMContentLoaded {timing[2]:.0f} ms, load {timing[3]:.0f} ms, {timing[4]:,} bytes; "
        f"find {spent:.0f} ms, expand all {expand:.0f} ms"
    )
