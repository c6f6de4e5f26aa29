"""Read what a person sees on a page: the text of elements with a given class."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)


class _ClassText(HTMLParser):
    def __init__(self, css_class: str) -> None:
        super().__init__(convert_charrefs=True)
        self.css_class = css_class
        self.open: list[int | None] = []  # per open element: its index in found, if it has the class
        self.found: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID:
            return
        classes = (dict(attrs).get("class") or "").split()
        if self.css_class in classes:
            self.open.append(len(self.found))
            self.found.append([])
        else:
            self.open.append(None)

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self.open:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        for index in self.open:
            if index is not None:
                self.found[index].append(data)


def texts(html: str, css_class: str) -> list[str]:
    """Whitespace-normalised text of every element with ``css_class``, in page order."""
    parser = _ClassText(css_class)
    parser.feed(html)
    parser.close()
    return [" ".join("".join(parts).split()) for parts in parser.found]
