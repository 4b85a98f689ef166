"""The dashboard serves its pages in a real browser."""

from __future__ import annotations

from tests.web.conftest import Board


def test_nav_reaches_every_part(board: Board, page) -> None:
    page.goto(board.url + "/")
    assert page.title() == "Overview - jobledger"
    page.click("nav >> text=Task sets")
    page.wait_for_url("**/tasksets")
    page.click("nav >> text=Queue")
    page.wait_for_url("**/queue")
    assert page.locator("h1").inner_text() == "Queue"
