"""Parse an HTML report page strictly in tests: every tag closed in order, its <img> attributes and its text."""
from html.parser import HTMLParser


class HtmlCollector(HTMLParser):
    """Feed a page; then `imgs` holds each <img>'s attributes, `texts` the text runs, `stack` the open tags
    (empty for a well-formed page). A tag closed out of order fails the test where it happens."""

    def __init__(self):
        super().__init__()
        self.imgs, self.stack, self.texts = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))
        elif tag not in ("meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.texts.append(data)
