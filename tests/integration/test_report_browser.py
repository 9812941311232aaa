"""The report in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

The page is made by the whole local flow (run, verify, report), opened from
the file system with the network cut off (it must be self-contained), and
checked as a reader sees it: no console or page errors, the summary, the
plots, the verification, and a trials filter that works.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.integration.test_recommend_flow import hwmatch, manifests, workdir  # noqa: F401  (workdir: a fixture)

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here: `make system-deps` installs Debian's chromium")
def test_the_report_renders_in_chromium_without_errors_and_its_filter_works(workdir: Path) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    path = workdir / "law.yaml"
    path.write_text(yaml.safe_dump_all(manifests([{"metric": "quality", "min": 0.85},
                                                  {"metric": "latency_p99_ms", "max": 4.0}], throughput=1000)))
    store = workdir / "store.db"
    assert hwmatch("run", str(path), "--store", str(store), cwd=workdir).returncode == 0
    assert hwmatch("verify", "--store", str(store), "--repetitions", "2", cwd=workdir).returncode == 0
    report = hwmatch("report", "--store", str(store), "--out", str(workdir / "report"), cwd=workdir)
    assert report.returncode == 0, report.stderr
    page_path = workdir / "report" / "index.html"
    assert sorted(p.name for p in page_path.parent.iterdir()) == ["index.html"]  # one self-contained file
    text = page_path.read_text()
    assert "{'" not in text and ">None<" not in text and ">nan<" not in text  # no Python repr, no NaN for a reader

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file:") else None)
        page.goto(page_path.as_uri())
        assert page.locator(".summary .answer").first.inner_text().startswith("Run ")
        assert page.locator("figure svg").count() == 2  # the Pareto view and cost against replicas
        assert page.get_by_text("Verified by measurement").count() == 1
        rows = page.locator("#trials-table tbody tr")
        total = rows.count()
        visible = lambda: sum(1 for i in range(total) if rows.nth(i).is_visible())  # noqa: E731
        assert total > 0 and visible() == min(total, 50)
        page.fill("#filter", "one")  # the one-CPU platform's trials only
        assert 0 < visible() < total and all("one" in rows.nth(i).inner_text() for i in range(total)
                                             if rows.nth(i).is_visible())
        assert "of %d trials" % total in page.locator("#pager").inner_text()
        page.screenshot(path=str(workdir / "report.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert not requests, requests  # nothing fetched: it works offline
    assert (workdir / "report.png").stat().st_size > 20_000
