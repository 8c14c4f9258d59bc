"""Pakati's cards in the real template browser (front end 1.27): thumbnails that load, titles, descriptions, order.

The cards' titles, descriptions and order come from web/js/template_cards.json through
web/js/pakati_templates.js (the front end itself would show the file name twice, in the
server's directory order); the thumbnails are workflows/NAME.jpg, written by
tests/browser/test_template_layout.py with PAKATI_UPDATE_DOCS=1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

pytestmark = [pytest.mark.host, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
CARDS = json.loads((REPO / "web" / "js" / "template_cards.json").read_text())["templates"]
FLAGSHIP = "regional_sdxl"


def templates() -> list[str]:
    return sorted(p.stem for p in (REPO / "workflows").glob("*.json"))


def expected_order() -> list[str]:
    on_disk = set(templates())
    listed = [c["name"] for c in CARDS if c["name"] in on_disk]
    return listed + sorted(on_disk - set(listed))


def test_every_template_has_a_card_and_a_thumbnail():
    names = [c["name"] for c in CARDS]
    assert len(names) == len(set(names)) and names[0] == FLAGSHIP, "one entry per template, the flagship first"
    for card in CARDS:
        assert card["title"].strip() and card["description"].strip() and len(card["description"]) <= 160, card
    missing_card = [n for n in templates() if n not in names]
    missing_jpg = [n for n in templates() if not (REPO / "workflows" / f"{n}.jpg").is_file()]
    assert not missing_card, f"templates without a title and description in web/js/template_cards.json: {missing_card}"
    assert not missing_jpg, (
        f"templates without a thumbnail: {missing_jpg} (PAKATI_UPDATE_DOCS=1 python -m pytest "
        "tests/browser/test_template_layout.py writes workflows/NAME.jpg)"
    )
    stale = [c["name"] for c in CARDS if c["name"] not in templates()]
    assert not stale, f"web/js/template_cards.json names templates that do not exist: {stale}"


def open_pakati_templates(fe, refused: list[str] | None = None) -> None:
    """A fresh page, its template browser opened on the pakati category; ``refused`` collects failed template requests."""
    fe.fresh()
    if refused is not None:

        def on_response(r) -> None:
            if "/workflow_templates" in r.url and r.status >= 400:
                refused.append(f"{r.status} {r.url}")

        fe.page.on("response", on_response)
    fe.close_toasts()
    fe.page.locator(".templates-tab-button").click()
    content = fe.page.locator('[data-testid="template-workflows-content"]')
    content.wait_for()
    content.get_by_role("option", name="pakati", exact=True).click()
    content.locator(f'[data-testid="template-workflow-{FLAGSHIP}"]').wait_for()


def test_template_browser_shows_titled_cards_with_thumbnails_in_order(fe):
    refused: list[str] = []
    open_pakati_templates(fe, refused)
    by_name = {c["name"]: c for c in CARDS}
    want = expected_order()
    # the front end renders 12 cards a page and loads more as the grid scrolls: scroll until all are there
    fe.page.wait_for_function(
        """(n) => {
            const cards = document.querySelectorAll('[data-testid^="template-workflow-"]');
            if (cards.length) cards[cards.length - 1].scrollIntoView();
            return cards.length === n;
        }""",
        arg=len(want),
        polling=250,
    )
    thumbnails = {}
    for name in want:  # thumbnails load lazily while their card is in view (and are released after)
        card = fe.page.locator(f'[data-testid="template-workflow-{name}"]')
        card.scroll_into_view_if_needed()
        fe.page.wait_for_function(
            "(c) => [...c.querySelectorAll('img')].some(i => i.complete && i.naturalWidth > 0)", arg=card.element_handle(), timeout=30_000
        )
        thumbnails[name] = card.evaluate("(c) => [...c.querySelectorAll('img')].map(i => [i.naturalWidth, i.naturalHeight])")
    fe.page.wait_for_timeout(300)
    cards = fe.js("""() => [...document.querySelectorAll('[data-testid^="template-workflow-"]')].map(c => ({
        name: c.dataset.testid.slice('template-workflow-'.length),
        title: c.querySelector('h3').textContent.trim(),
        description: c.querySelector('p').textContent.trim()}))""")
    assert [c["name"] for c in cards] == want, "the flagship first, then template_cards.json's order"
    for card in cards:
        meta = by_name.get(card["name"])
        if meta is not None:
            assert (card["title"], card["description"]) == (meta["title"], meta["description"]), card
        size = list(Image.open(REPO / "workflows" / f"{card['name']}.jpg").size)
        assert size in thumbnails[card["name"]], f"{card['name']}: its thumbnail ({size}) did not load: {thumbnails[card['name']]}"
    assert not refused, f"template browser requests refused: {refused}"


def test_the_flagship_card_opens_its_template(fe):
    open_pakati_templates(fe)
    fe.watch()
    fe.page.locator(f'[data-testid="template-workflow-{FLAGSHIP}"]').click()
    fe.page.wait_for_function("() => app.graph._nodes.some(n => n.type === 'PakatiCanvas')")
    fe.page.wait_for_timeout(500)
    assert not fe.page.locator('[data-testid="template-workflows-content"]').count(), "the dialog closes"
    assert not fe.errors and not fe.toasts(), (fe.errors, fe.toasts())
    assert not fe.missing_node_types()
