"""A small reading of the pages' HTML for assertions: elements with their attributes and text."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

# Elements without an end tag in HTML.
_VOID = frozenset({"meta", "input", "br", "img", "hr", "link", "col", "source", "wbr"})


@dataclass(eq=False)
class Element:
    """One element: its tag, attributes and the text inside it (descendants included)."""

    tag: str
    attrs: dict[str, str]
    text: str = ""
    ancestors: list[Element] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        """Its class names."""
        return set(self.attrs.get("class", "").split())


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, ancestors=list(self.open))
        self.elements.append(element)
        if tag not in _VOID:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(
            Element(tag, {k: v or "" for k, v in attrs}, ancestors=list(self.open))
        )

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        # Every page must close what it opens, in order: a mismatch is a broken page.
        innermost = self.open[-1].tag if self.open else "nothing"
        assert innermost == tag, f"</{tag}> closes <{innermost}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.text += data


def parse(page: str) -> list[Element]:
    """Every element of `page`, in document order; fails on a tag closed out of order."""
    reader = _Reader()
    reader.feed(page)
    reader.close()
    assert not reader.open, f"unclosed: {[e.tag for e in reader.open]}"
    return reader.elements


def select(page: str, tag: str = "", cls: str = "") -> list[Element]:
    """The elements of `page` with that tag and/or class."""
    return [e for e in parse(page) if (not tag or e.tag == tag) and (not cls or cls in e.classes)]
