"""Drive the real ComfyUI front end in headless Debian Chromium through Playwright.

Used by the browser tests: open the server's page, wait for ``window.app``, collect page
errors raised after our own actions, and load UI-format workflows with ``app.loadGraphData``.
No browser is ever downloaded: Playwright launches the system ``/usr/bin/chromium``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from harness import missing

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def browser_missing_reason() -> str | None:
    """One line saying why browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "NO PLAYWRIGHT: browser tests skipped (pip install playwright; .ci/run does this)"
    if find_chromium() is None:
        return "NO CHROMIUM: browser tests skipped (apt-get install chromium; .ci/run does this)"
    return None


def require_browser() -> None:
    reason = browser_missing_reason()
    if reason:
        missing(reason)


class FrontEnd:
    """One Chromium page on the ComfyUI front end; ``errors`` holds page errors since ``watch()``."""

    def __init__(self, url: str, viewport: tuple[int, int] = (1400, 1000)):
        from playwright.sync_api import sync_playwright

        self.url = url
        self.viewport = viewport
        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        self.errors: list[str] = []
        self.console_errors: list[str] = []
        self._watching = False
        self.context = None
        self._new_context()

    def _new_context(self) -> None:
        if self.context is not None:
            self.context.close()
        self.context = self.browser.new_context(viewport={"width": self.viewport[0], "height": self.viewport[1]})
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.page.on("pageerror", self._on_page_error)
        self.page.on("console", self._on_console)

    def fresh(self) -> None:
        """A new browser context (empty local storage) with the page opened again.

        The front end restores the last open workflow from local storage, so a reused page would
        report the previous workflow's alerts as this one's."""
        self._new_context()
        self.open()

    def _on_page_error(self, err) -> None:
        if self._watching:
            self.errors.append(f"{err.name}: {err.message}\n{err.stack or ''}")

    def _on_console(self, msg) -> None:
        if self._watching and msg.type == "error":
            self.console_errors.append(msg.text)

    def open(self) -> None:
        """Load the page and wait until the graph exists and the node definitions are in."""
        self._watching = False
        self.page.goto(self.url)
        self.page.wait_for_function(
            "() => window.app && window.app.graph && window.LiteGraph && "
            "LiteGraph.registered_node_types && Object.keys(LiteGraph.registered_node_types).length > "
            "50"
        )
        self.close_dialogs()

    def reload(self) -> None:
        """Reload the page (the front end restores the open workflow); call ``watch()`` again after."""
        self._watching = False
        self.page.reload()
        self.page.wait_for_function("() => window.app && window.app.graph && app.graph._nodes.length > 0")
        self.page.wait_for_timeout(500)
        self.close_dialogs()

    def close_dialogs(self) -> None:
        """Close the template browser the front end opens on first load (it covers the canvas)."""
        for _ in range(3):
            if not self.page.locator(".p-dialog").count():
                return
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(300)

    def toasts(self) -> list[str]:
        """The text of every toast (alerts, warnings, notices) the front end shows now."""
        return self.js("() => [...document.querySelectorAll('.p-toast-message')].map(e => e.innerText.trim())")

    def close_toasts(self) -> None:
        for _ in range(10):
            close = self.page.locator(".p-toast-message .p-toast-close-button")
            if not close.count():
                return
            close.first.click()
            self.page.wait_for_timeout(100)

    def watch(self) -> None:
        """Start recording page errors (the front end raises one of its own during first load)."""
        self.errors.clear()
        self.console_errors.clear()
        self._watching = True

    def js(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    def load_workflow(self, workflow: dict) -> None:
        self.js("async (wf) => { await app.loadGraphData(wf); }", workflow)
        self.page.wait_for_timeout(200)

    def missing_node_types(self) -> list[str]:
        """Types of loaded nodes the server did not register (the front end keeps them as placeholders)."""
        return self.js(
            """() => app.graph._nodes
                  .filter(n => !n.constructor.nodeData && !['Note', 'MarkdownNote', 'Reroute', 'PrimitiveNode'].includes(n.type))
                  .map(n => n.type)"""
        )

    def close(self) -> None:
        try:
            self.context.close()
            self.browser.close()
        finally:
            self._pw.stop()


def doc_picture(name: str) -> Path:
    """Where a test writes the README picture ``name``: ``docs/`` when PAKATI_UPDATE_DOCS=1 (to
    refresh the README's pictures), else a temporary folder, so a test run changes no tracked file."""
    folder = (
        Path(__file__).resolve().parent.parent / "docs"
        if os.environ.get("PAKATI_UPDATE_DOCS") == "1"
        else Path(tempfile.gettempdir()) / "pakati-docs"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
