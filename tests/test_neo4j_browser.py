"""Neo4j Browser, for real: its static build from Maven Central, served over HTTP, connected over
Bolt (WebSocket on the Bolt port) to the test Neo4j, in headless Chromium. It applies our style,
runs a `contextgraph/store/cypher/browser/` query and draws the decision's trace; the screenshot is checked,
and
kept as docs/neo4j-browser.png when CONTEXTGRAPH_UPDATE_DOCS=1.

Needs Chromium and chromedriver (Debian: `apt-get install chromium chromium-driver`) and the
Browser jar (`mvn -f tools/neo4j-browser/pom.xml dependency:copy-dependencies`): `.ci/run`
installs both.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import shutil
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from contextgraph import demo
from contextgraph.config import Neo4jSettings
from contextgraph.render.browser import browser_query, grass
from contextgraph.store import Neo4jStore

ROOT = Path(__file__).resolve().parent.parent
BROWSER_POM = ROOT / "tools" / "neo4j-browser" / "pom.xml"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
]
QUERY = "decision_trace"


def browser_jar() -> Path:
    """Neo4j Browser's static build (cached in ~/.m2; copied to tools/neo4j-browser/target)."""
    folder = BROWSER_POM.parent / "target" / "dependency"
    found = sorted(folder.glob("neo4j-browser-*.jar"))
    if not found:
        mvn = shutil.which("mvn")
        if mvn is None:
            pytest.fail("Maven (mvn) is needed to fetch Neo4j Browser from Maven Central")
        subprocess.run([mvn, "-q", "-B", "-f", str(BROWSER_POM), "dependency:copy-dependencies"], check=True)
        found = sorted(folder.glob("neo4j-browser-*.jar"))
    return found[-1]


class BrowserServer:
    """Serves the jar's `browser/` files, and at `/` the discovery document a Neo4j server would
    answer, so that Browser offers our Bolt address in its connect form."""

    def __init__(self, jar: Path, bolt_uri: str) -> None:
        archive = zipfile.ZipFile(jar)
        files = set(archive.namelist())
        discovery = json.dumps(
            {"bolt_direct": bolt_uri, "neo4j_version": "5.26.0", "neo4j_edition": "community"}
        ).encode()
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                if path == "/":
                    body, kind = discovery, "application/json"
                else:
                    name = path.lstrip("/") + ("index.html" if path.endswith("/") else "")
                    if name not in files:
                        self.send_error(404)
                        return
                    with lock:
                        body = archive.read(name)
                    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/browser/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> BrowserServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium is needed: apt-get install -y chromium chromium-driver (.ci/run does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="contextgraph-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.neo4j
def test_neo4j_browser_connects_styles_and_draws_a_decision_trace(
    neo4j_settings: Neo4jSettings, chromium: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with Neo4jStore.connect(neo4j_settings) as store:
        store._write("MATCH (n) DETACH DELETE n", {})
        store.ensure_schema()
        demo.load(store)

    driver = chromium
    wait = WebDriverWait(driver, 90)

    def by_testid(name: str) -> Any:
        """The element once a user could use it: shown and enabled (Browser renders in steps)."""

        def usable(d: Any) -> Any:
            found = d.find_elements(By.CSS_SELECTOR, f'[data-testid="{name}"]')
            return found[0] if found and found[0].is_displayed() and found[0].is_enabled() else False

        return wait.until(usable)

    def run(command: str) -> None:
        """Type one line into Browser's editor and press its Run button, as a user does."""
        frames = len(driver.find_elements(By.CSS_SELECTOR, '[data-testid="frame"]'))
        by_testid("activeEditor").click()
        ActionChains(driver).send_keys(command).perform()
        by_testid("editor-Run").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="frame"]')) > frames)

    with BrowserServer(browser_jar(), neo4j_settings.uri or "") as site:
        driver.get(site.url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="password"]'))
        host = urlparse(neo4j_settings.uri).netloc
        assert by_testid("boltaddress").get_attribute("value") == host, "Browser read our discovery document"
        Select(by_testid("bolt-scheme-select")).select_by_visible_text("bolt://")
        by_testid("username").send_keys(neo4j_settings.username)
        by_testid("password").send_keys(neo4j_settings.password.get_secret_value())
        by_testid("connect").click()
        wait.until(lambda d: "connected as user" in d.find_element(By.TAG_NAME, "body").text)

        for close in driver.find_elements(
            By.XPATH, "//span[contains(., 'help make Neo4j Browser better')]/following-sibling::span[1]"
        ):
            close.click()  # the usage-statistics banner
        # Typed key by key: leave out bookkeeping labels the trace never shows (typing time).
        style = re.sub(r"node\.(Deployment|SchemaVersion) \{.*?\}\n", "", grass(), flags=re.S)
        run(":style " + " ".join(style.split()))
        query = browser_query(QUERY)
        for line in query.param_lines:
            run(line)
        run(" ".join(query.body.split()))
        wait.until(lambda d: "Displaying" in d.find_element(By.TAG_NAME, "body").text)
        driver.find_element(By.CSS_SELECTOR, '[data-testid="frame"] button[title="Fullscreen"]').click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "g.node circle.b-outline")) >= 14)
        for button in driver.find_elements(By.CSS_SELECTOR, 'button[aria-label="zoom-to-fit"]'):
            button.click()  # zoom the drawing to the frame

        fills = {
            c.get_attribute("fill").upper()
            for c in driver.find_elements(By.CSS_SELECTOR, "g.node circle.b-outline")
        }
        # Our style's colours: Decision, Option, Actor, Proposal, Dag (not Browser's defaults).
        assert {"#F79767", "#FFC454", "#DA7194", "#C990C0", "#4C8EDA"} <= fills, fills
        captions = " ".join(t.text for t in driver.find_elements(By.CSS_SELECTOR, "g.node text.caption"))
        assert "Respond" in captions and "Ben Okafor" in captions, captions
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Decision (4)" in body and "INFORMED_BY" in body and "Option (3)" in body

        shot = tmp_path / "neo4j-browser.png"
        driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
        if os.environ.get("CONTEXTGRAPH_UPDATE_DOCS"):
            shutil.copy(shot, ROOT / "docs" / "neo4j-browser.png")
