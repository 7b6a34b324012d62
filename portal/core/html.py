"""The one HTML policy: everything a user writes becomes HTML here, and only here.

Questions, answers, comments, ideas, reviews and profile texts are rendered once, when they
are saved, and the result is stored beside the source. A template may therefore insert the
stored HTML as-is, so this module is the whole defence against cross-site scripting from user
content: it must be strict, predictable and fast, and it must never raise (a save must not fail
because of what someone typed).

How it is built:

1. The text is cleaned (lone surrogates, NUL and other control characters become U+FFFD) so
   that every later stage, the database included, sees valid Unicode.
2. Markdown is parsed by markdown-it-py (CommonMark, tables, strikethrough, bare URLs linked
   by linkify-it-py) with raw HTML *disabled*: ``<b>`` in a post is shown as text, not markup.
   The token stream is then adjusted: headings are demoted two levels (the page owns h1/h2),
   table alignment becomes ``align`` (no ``style``), links and images are held to the URL
   policy below.
3. The HTML is passed through an allow-list sanitizer, nh3 (Rust's ammonia, with html5ever,
   the HTML5 parser Servo uses). It is the last gate for Markdown output and the only gate for
   HTML from elsewhere (:func:`sanitize_html`). nh3 rather than bleach: on the HTML of a 2 KB
   post it takes 0.13 ms against bleach's 3 ms, on that of a 1 MB post 0.12 s against 2.7 s.
   Rendering a 2 KB post costs about 2.5 ms in all, nearly all of it Markdown parsing.

The URL policy: links keep only ``http:``, ``https:`` and ``mailto:`` URLs and same-site paths
that begin with exactly one ``/``; every link gets ``rel="nofollow ugc noopener"`` and never a
``target``. Images are dropped unless the caller allows them, and then only from
:data:`UPLOADS_PREFIX`, the portal's own uploads (no other host can be made to see who reads).

Size guards keep every call around a second at most, whatever the input (see the tests):

- Markdown sources longer than :data:`MAX_MARKDOWN_CHARS`, or with more than
  :data:`MAX_LINK_BRACKETS` ``[``, are shown as plain paragraphs: markdown-it-py is
  superlinear on some shapes (1 MB of ``[`` takes 22 s, 1 MB of bare URLs 55 s; link and image
  brackets are quadratic: 2,000 ``![`` take 0.28 s, 25,000, which fit in the size limit, 3 s).
  Features should refuse longer posts with a form error; this is only the safety net.
- HTML given to :func:`sanitize_html` that is longer than :data:`MAX_HTML_CHARS` or has more
  than :data:`MAX_HTML_TAGS` start tags is reduced to its text: html5ever is superlinear on
  some shapes too (100,000 nested ``<div>`` take 20 s; 1 MB of ``<a b`` or of ``&`` over 8 s),
  and the number of start tags bounds the nesting depth. Markdown's own output does not need
  these guards: its nesting is bounded by markdown-it's ``maxNesting`` and its size by the
  source limit.
"""

from __future__ import annotations

import html as _html
import logging
import re
import threading
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

import nh3
from linkify_it import LinkifyIt
from linkify_it.main import Match
from markdown_it import MarkdownIt
from markdown_it.token import Token

_log = logging.getLogger(__name__)

UPLOADS_PREFIX = "/uploads/"
"""Images are allowed only from the portal's own uploads: an image from any other host would
tell that host who reads the page, and when."""

MAX_MARKDOWN_CHARS = 50_000
"""Longer sources are shown as plain text. Discourse's default post limit is 32,000 characters;
at 50,000 the slowest Markdown shape measured (``![`` repeated) renders in about 0.9 s."""

MAX_LINK_BRACKETS = 2_000
"""More ``[`` than this in a source shows it as plain text: a post has one per link or image
(and per task-list box), and a thousand links is already an unusual post."""

MAX_HTML_CHARS = 100_000
"""Longer HTML given to :func:`sanitize_html` keeps only its text. At 100,000 characters the
slowest shapes measured sanitize in about 0.1 s; at 1,000,000 some take over 8 s."""

MAX_HTML_TAGS = 10_000
"""More start tags than this and :func:`sanitize_html` keeps only the text. The worst nesting
measured at 10,000 start tags (``<div>`` repeated) sanitizes in 0.5 s; at 100,000 in 20 s."""

LINK_REL = "nofollow ugc noopener"
"""On every link: user content earns no search ranking (nofollow, ugc), and a page it opens
cannot reach back into ours (noopener)."""

_LINK_SCHEMES = frozenset({"http", "https", "mailto"})

# The tags a post may contain; img is added only when the caller allows images.
_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
        "code", "pre", "blockquote", "ul", "ol", "li", "a",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}}
_IMAGE_ATTRIBUTES = {"img": {"src", "alt", "title"}}
# Table column alignment, the one presentational attribute kept: a fixed set of values.
_ALIGN = {"align": {"left", "center", "right"}}
_TAG_ATTRIBUTE_VALUES = {"th": _ALIGN, "td": _ALIGN}
# Dropped with everything inside them, not just unwrapped: their content is code or markup
# that would otherwise turn up as stray text.
_CLEAN_CONTENT_TAGS = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "embed", "svg", "math"}
)

# C0 and C1 control characters other than tab, newline and carriage return. They are never
# typed on purpose, HTML calls them parse errors and PostgreSQL refuses NUL; they are replaced,
# not removed, so that "java\x00script:" cannot become "javascript:".
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# What the WHATWG URL parser ignores: tab and newlines anywhere, C0 controls and space at the
# ends. Removing the same here means the URL checked is the URL a browser would follow.
_URL_IGNORED = re.compile("[\t\n\r]")
_URL_TRIM = "".join(chr(c) for c in range(0x21))
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# A start tag is "<" followed by an ASCII letter (HTML tokenizer, tag open state).
_START_TAG = re.compile(r"<[A-Za-z]")
# Linear on any input ("<[^>]*>" is quadratic on a megabyte of "<a b" without a ">").
_ANY_TAG = re.compile(r"<[^<>]*>")
# After sanitizing, tags are normalised and "<" inside text or attributes is escaped, so a
# plain pattern is exact here.
_TOP_HEADING = re.compile(r"<(/?)h[12]>")
_BLANK_LINES = re.compile(r"\n\s*\n")
# CJK symbols and punctuation ("。", "、", "「") and full-width punctuation ("，", "！", "）").
_CJK_PUNCT = "\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
# Chinese characters, kana and hangul.
_CJK_LETTERS = "\u2e80-\u2fff\u3040-\u9fff\uac00-\ud7af\uf900-\ufaff"
_NOT_CJK = re.compile(f"[^{_CJK_PUNCT}{_CJK_LETTERS}]+")
_URL_STOP = re.compile(f"[\\s{_CJK_PUNCT}]")  # no URL contains these
_HOST_RUNS_INTO_CJK = re.compile(
    f"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*?[A-Za-z0-9](?=[{_CJK_LETTERS}])"
)
_HEADING_SHIFT = 2


# --- URLs -----------------------------------------------------------------------------------


def _normalize_url(value: str) -> str:
    return _URL_IGNORED.sub("", value).strip(_URL_TRIM)


def safe_link_url(value: str) -> str | None:
    """The URL as a browser would read it if a link may point there, else None.

    Allowed: absolute http, https and mailto URLs, and paths on this site ("/questions/1").
    Refused: every other scheme (javascript:, data:, vbscript:, however cased or split by tabs
    and newlines), protocol-relative URLs ("//evil.example", and "/\\evil.example", which
    browsers read the same way) and relative paths, whose target depends on the page they
    happen to be shown on.
    """
    url = _normalize_url(value)
    if url.startswith("/"):
        return None if url[1:2] in ("/", "\\") else url
    scheme = _SCHEME.match(url)
    if scheme and scheme.group(1).lower() in _LINK_SCHEMES:
        return url
    return None


def safe_image_url(value: str) -> str | None:
    """The URL if it names a file in the portal's own uploads, else None.

    ``..``, ``//`` and backslashes are refused in the URL and in its percent-decoded form
    (browsers treat ``%2e%2e`` as ``..``), so the path cannot climb out of the uploads.
    """
    url = _normalize_url(value)
    if not url.startswith(UPLOADS_PREFIX):
        return None
    for form in (url, unquote(url)):
        if ".." in form or "//" in form or "\\" in form:
            return None
    return url


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3's hook for every kept attribute: the URL policy for href and src."""
    try:
        if attribute == "href":
            return safe_link_url(value)
        if attribute == "src":
            return safe_image_url(value) if tag == "img" else None
        return value
    except Exception:  # a hook that raised would only be reported; refuse instead
        return None


# --- sanitizing -----------------------------------------------------------------------------


def _new_cleaner(allow_images: bool) -> nh3.Cleaner:
    tags = set(_TAGS) | ({"img"} if allow_images else set())
    attributes = {**_ATTRIBUTES, **(_IMAGE_ATTRIBUTES if allow_images else {})}
    return nh3.Cleaner(
        tags=tags,
        clean_content_tags=set(_CLEAN_CONTENT_TAGS),
        attributes=attributes,
        attribute_filter=_filter_attribute,
        strip_comments=True,
        link_rel=LINK_REL,
        tag_attribute_values=_TAG_ATTRIBUTE_VALUES,
        url_schemes=set(_LINK_SCHEMES),
    )


_CLEANERS = {False: _new_cleaner(False), True: _new_cleaner(True)}


def _clean(html: str, allow_images: bool) -> str:
    """The allow-list pass, for HTML whose nesting is known to be shallow."""
    return _TOP_HEADING.sub(r"<\1h3>", _CLEANERS[allow_images].clean(html))


def _clean_text(text: Any) -> str:
    """Valid Unicode without control characters, from whatever the caller passed."""
    if text is None:
        return ""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    elif isinstance(text, str):
        text = str.__str__(text)  # a plain str: a Markup would escape what is added to it
    else:
        text = str(text)
    if _SURROGATE.search(text):
        # Pairs that were split into two code points are joined; lone halves become U+FFFD.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return _CONTROL.sub("\ufffd", text)


def _plain_paragraphs(text: str) -> str:
    """Text as escaped paragraphs: the linear-time rendering used past the size guards.

    Safe by construction (every character of the text is escaped, the only tags are p and
    br), so it skips the sanitizer, which is itself what is too slow for such input.
    """
    paragraphs = (p.strip() for p in _BLANK_LINES.split(text.replace("\r\n", "\n")))
    return "".join(
        "<p>" + _html.escape(p, quote=False).replace("\n", "<br>\n") + "</p>\n"
        for p in paragraphs
        if p
    )


def sanitize_html(html: str, *, allow_images: bool = False) -> str:
    """HTML from anywhere -> the subset this policy allows, safe to insert into a page as-is.

    For HTML that did not come from :func:`render_markdown` (imports, older stored HTML).
    Disallowed tags are removed but their text is kept (script, style, svg, math, iframe and
    the like lose their content too); h1 and h2 become h3, because the page owns those levels.
    Input beyond :data:`MAX_HTML_CHARS` or :data:`MAX_HTML_TAGS` is reduced to its text.
    Meant for HTML from elsewhere: to change how stored posts look, render their sources again.
    """
    text = _clean_text(html)
    if len(text) > MAX_HTML_CHARS or len(_START_TAG.findall(text)) > MAX_HTML_TAGS:
        return _plain_paragraphs(_html.unescape(_ANY_TAG.sub(" ", text)))
    return _clean(text, allow_images)


# --- Markdown -------------------------------------------------------------------------------


class _Linkify(LinkifyIt):
    """linkify-it, fitted to Chinese text, where words are not separated by spaces.

    linkify-it lets a URL run on into the Chinese around it: "见https://example.com/a。谢谢"
    would link ".../a。谢谢", and "请访问www.example.com获取" links nothing at all. Here a URL
    stops at full-width punctuation, a host name stops where Chinese follows an ASCII letter,
    and a scheme-less address (www.example.com, jane@example.com) is looked for only between
    Chinese words. What is given up: scheme-less links to Chinese domain names. Each piece
    of text is scanned once, so the cost stays linear.
    """

    def match_at_start(self, text: str) -> Match | None:
        """Used by markdown-it's inline rule, for "scheme://" links."""
        # Both searches look at a bounded window: this runs once per "://" in a paragraph.
        if end := _URL_STOP.search(text, 0, 2048):
            text = text[: end.start()]
        if run_on := _HOST_RUNS_INTO_CJK.match(text, 0, 300):
            text = text[: run_on.end()]
        return super().match_at_start(text)

    def test(self, text: str) -> bool:
        """Asked by markdown-it's core rule before it calls :meth:`match`."""
        return any(
            self.pretest(piece.group()) and super(_Linkify, self).test(piece.group())
            for piece in _NOT_CJK.finditer(text)
        )

    def match(self, text: str) -> list[Match] | None:
        """Used by markdown-it's core rule, for the rest (www.example.com, addresses)."""
        links: list[Match] = []
        for piece in _NOT_CJK.finditer(text):
            if not self.pretest(piece.group()):
                continue
            for link in super().match(piece.group()) or []:
                link.index += piece.start()
                link.last_index += piece.start()
                links.append(link)
        return links or None


_local = threading.local()


def _markdown() -> MarkdownIt:
    """One parser per thread: linkify-it keeps per-call state on its instance."""
    md: MarkdownIt | None = getattr(_local, "markdown", None)
    if md is None:
        md = MarkdownIt(
            "commonmark",
            # breaks: a newline typed in the editor is a line break, as on GitHub and Discourse;
            # a soft break would also put a stray space between two lines of Chinese.
            {"html": False, "linkify": True, "breaks": True, "typographer": False},
        )
        md.enable(["table", "strikethrough", "linkify"])
        md.linkify = _Linkify()
        _local.markdown = md
    return md


def _as_text(token: Token, md: MarkdownIt) -> Token:
    text = Token("text", "", 0)
    text.content = md.renderer.renderInlineAsText(token.children or [], md.options, {})
    return text


def _inline(children: list[Token], md: MarkdownIt, allow_images: bool) -> list[Token]:
    """Links and images held to the URL policy: a refused link keeps its text, a refused
    image becomes its alt text."""
    kept: list[Token] = []
    dropped_links: list[bool] = []
    for token in children:
        if token.type == "link_open":
            href = safe_link_url(str(token.attrGet("href") or ""))
            dropped_links.append(href is None)
            if href is None:
                continue
            token.attrSet("href", href)
        elif token.type == "link_close":
            if dropped_links and dropped_links.pop():
                continue
        elif token.type == "image":
            src = safe_image_url(str(token.attrGet("src") or "")) if allow_images else None
            if src is None:
                kept.append(_as_text(token, md))
                continue
            token.attrSet("src", src)
        kept.append(token)
    return kept


def _adjust(tokens: list[Token], md: MarkdownIt, allow_images: bool) -> None:
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            level = min(int(token.tag[1]) + _HEADING_SHIFT, 6)
            token.tag = f"h{level}"
        elif token.type in ("th_open", "td_open"):
            style = str(token.attrGet("style") or "")
            token.attrs.pop("style", None)
            if style.startswith("text-align:"):
                token.attrSet("align", style.removeprefix("text-align:"))
        elif token.type == "inline" and token.children:
            token.children = _inline(token.children, md, allow_images)


def render_markdown(source: str, *, allow_images: bool = False) -> str:
    """Markdown -> sanitized HTML, safe to insert into a page as-is.

    Called once when content is saved; the result is stored beside the source, so pages never
    pay for rendering. Raw HTML in the source is shown as text. Images are kept only with
    ``allow_images`` and only from :data:`UPLOADS_PREFIX`; otherwise their alt text remains.
    Never raises: whatever cannot be rendered as Markdown is shown as escaped text.
    """
    text = _clean_text(source)
    if not text.strip():
        return ""
    if len(text) > MAX_MARKDOWN_CHARS or text.count("[") > MAX_LINK_BRACKETS:
        return _plain_paragraphs(text)
    try:
        md = _markdown()
        env: dict[str, Any] = {}
        tokens = md.parse(text, env)
        _adjust(tokens, md, allow_images)
        rendered = md.renderer.render(tokens, md.options, env)
    except Exception:  # a parser bug must not lose a post: show it as text, and say so
        _log.exception("Markdown rendering failed; the source is shown as plain text")
        rendered = _plain_paragraphs(text)
    # Only Markdown's own markup reaches here (nesting limited by markdown-it's maxNesting),
    # so the tag-count guard of sanitize_html is not needed.
    return _clean(rendered, allow_images)


# --- plain text -----------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(_TAGS - {"strong", "em", "del", "s", "code", "a"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:  # "<p>a</p><p>b</p>" reads "a b", not "ab"
            self.parts.append(" ")
        elif tag == "img":  # stored HTML may keep an image: its alt text is what it says
            self.parts.append(dict(attrs).get("alt") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


# How much HTML html_to_plain_text parses between checks of whether it has text enough: a
# 300-character summary of a 2 KB post took 60 us with 2,048, 13 us with 512 (every submit
# stores one), and a smaller chunk no longer gained.
_PLAIN_TEXT_CHUNK = 512


def html_to_plain_text(html: str, limit: int | None = None) -> str:
    """Stored (already sanitized) HTML -> one line of plain text, as :func:`to_plain_text`.

    With ``limit``, at most that many characters, and parsing stops once they are read: a
    300-character summary of a long post costs the summary, not the post.
    """
    extractor = _TextExtractor()
    if limit is None:
        extractor.feed(html)
    else:
        for start in range(0, len(html), _PLAIN_TEXT_CHUNK):
            extractor.feed(html[start : start + _PLAIN_TEXT_CHUNK])
            if len(" ".join("".join(extractor.parts).split())) > limit:
                break
    extractor.close()
    text = " ".join("".join(extractor.parts).split())
    return text if limit is None else text[:limit]


def to_plain_text(source: str) -> str:
    """Markdown -> one line of plain text, for snippets, notifications and the search index.

    The source is rendered first, so what remains is what a reader sees (link text, not link
    syntax; alt text, not images). Blocks are separated by a space and whitespace collapsed.
    The result is text, not HTML: it must still be escaped where it is put into a page
    ("a < b" stays "a < b"). Where the rendered HTML is stored, :func:`html_to_plain_text`
    reads it without rendering again.
    """
    return html_to_plain_text(render_markdown(source))
