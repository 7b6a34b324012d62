"""The HTML policy (portal/core/html.py): each rule, its robustness on hostile input, and
thousands of published XSS payloads pushed through every entry point.

Pure function tests: no database, no app. The payload corpus comes from the ``brs-kb`` package
(a maintained XSS knowledge base, MIT, a dev dependency); tests/browser/test_xss_render.py
renders the same outputs in Chromium.
"""

from __future__ import annotations

import ast
import random
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from portal.core import html as policy
from portal.core.html import (
    LINK_REL,
    MAX_HTML_CHARS,
    MAX_HTML_TAGS,
    MAX_LINK_BRACKETS,
    MAX_MARKDOWN_CHARS,
    UPLOADS_PREFIX,
    html_to_plain_text,
    render_markdown,
    safe_image_url,
    safe_link_url,
    sanitize_html,
    to_plain_text,
)

pytestmark = pytest.mark.database_free

# --- an auditor that knows nothing of the implementation --------------------------------------

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
    "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "rel"},
    "img": {"src", "alt", "title"},
    "th": {"align"},
    "td": {"align"},
}
FORBIDDEN_MARKUP = re.compile(
    r"<\s*/?\s*(script|iframe|object|embed|svg|math|form|input|base|meta|link|style)\b", re.I
)


def _as_browser_reads(url: str) -> str:
    """Entities decoded a second time (stricter than any browser), then what the WHATWG URL
    parser ignores removed: tab and newlines anywhere, C0 controls and spaces at the ends."""
    url = re.sub(r"[\t\n\r]", "", unescape(url))
    return url.strip("".join(chr(c) for c in range(0x21)))


def link_allowed(url: str) -> bool:
    url = _as_browser_reads(url)
    if url.startswith("/"):
        return url[1:2] not in ("/", "\\")
    scheme = re.match(r"([a-z][a-z0-9+.\-]*):", url, re.I)
    return bool(scheme) and scheme.group(1).lower() in {"http", "https", "mailto"}


def image_allowed(url: str) -> bool:
    url = _as_browser_reads(url)
    return url.startswith("/uploads/") and not any(
        bad in form for form in (url, unquote(url)) for bad in ("..", "//", "\\")
    )


class Audit(HTMLParser):
    """Every start tag and attribute of an output checked against the allow-list."""

    def __init__(self, allow_images: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.tags = ALLOWED_TAGS | ({"img"} if allow_images else set())
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.tags:
            self.problems.append(f"tag <{tag}>")
        names = [name for name, _ in attrs]
        for name, value in attrs:
            value = value or ""
            if (
                name.startswith("on")
                or name == "style"
                or name not in ALLOWED_ATTRIBUTES.get(tag, set())
            ):
                self.problems.append(f"attribute {name}= on <{tag}>")
            elif name == "href" and not link_allowed(value):
                self.problems.append(f"href {value!r}")
            elif name == "src" and not image_allowed(value):
                self.problems.append(f"src {value!r}")
            elif name == "rel" and value != LINK_REL:
                self.problems.append(f"rel {value!r}")
            elif name == "align" and value not in ("left", "center", "right"):
                self.problems.append(f"align {value!r}")
        if tag == "a" and "rel" not in names:
            self.problems.append("link without rel")

    handle_startendtag = handle_starttag

    def handle_comment(self, data: str) -> None:
        self.problems.append("comment")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"declaration {data!r}")


def audit(output: str, *, allow_images: bool) -> list[str]:
    """What is wrong with an output; empty when it keeps the policy."""
    checker = Audit(allow_images)
    checker.feed(output)
    checker.close()
    problems = checker.problems
    if "<script" in output.lower():
        problems.append("<script")
    if FORBIDDEN_MARKUP.search(output):
        problems.append(f"forbidden markup {FORBIDDEN_MARKUP.search(output).group(0)!r}")  # type: ignore[union-attr]
    return problems


def assert_clean(output: str, *, allow_images: bool = False) -> None:
    assert audit(output, allow_images=allow_images) == [], output


# --- rendering Markdown -----------------------------------------------------------------------


def test_chinese_text_passes_through_unchanged():
    assert (
        render_markdown("客户成功经理如何使用**报表模板**？")
        == "<p>客户成功经理如何使用<strong>报表模板</strong>？</p>\n"
    )
    assert to_plain_text("客户成功经理如何使用**报表模板**？") == "客户成功经理如何使用报表模板？"


def test_plain_text_of_stored_html_reads_what_a_reader_sees_up_to_a_limit():
    source = (
        "# Renewal\n\nSee [the guide](https://example.com/guide) and "
        f"![a chart of seats]({UPLOADS_PREFIX}chart.png)\n\n" + "续约 renewal " * 2000
    )
    stored = render_markdown(source, allow_images=True)
    assert "<img" in stored
    whole = html_to_plain_text(stored)
    assert whole == to_plain_text(source)  # the image's alt text, as without images
    assert whole.startswith("Renewal See the guide and a chart of seats 续约 renewal")
    assert html_to_plain_text(stored, limit=300) == whole[:300]
    assert html_to_plain_text("<p>a</p>\n\n\n<p>b &lt; c</p>", limit=300) == "a b < c"


def test_plain_text_up_to_a_limit_whatever_falls_across_a_parsed_chunk():
    # Parsing stops in chunks: a tag or an entity cut by a chunk's end must still read whole.
    block = '<p>a &amp; b &lt; <strong title="x &gt; y">c</strong> 续</p>'
    for pad in range(len(block)):
        stored = "x" * pad + block * 200
        whole = html_to_plain_text(stored)
        for limit in (10, 300, 1000):
            assert html_to_plain_text(stored, limit=limit) == whole[:limit]


def test_commonmark_tables_and_strikethrough():
    html = render_markdown(
        "Intro *em* **strong** `code` ~~old~~\nnext line\n\n"
        "> quoted\n\n- one\n- two\n\n1. first\n\n---\n\n"
        "```python\nif a < b:\n    pass\n```\n\n"
        "| Left | Right | Centre |\n|:-----|------:|:------:|\n| 1 | 2 | 3 |\n"
    )
    for fragment in (
        "<em>em</em>",
        "<strong>strong</strong>",
        "<code>code</code>",
        "<s>old</s>",
        "<br>",  # a typed newline is a line break
        "<blockquote>",
        "<ul>\n<li>one</li>",
        "<ol>\n<li>first</li>",
        "<hr>",
        "<pre><code>if a &lt; b:",  # the language class is dropped, the code kept
        '<th align="left">Left</th>',
        '<th align="right">Right</th>',
        '<td align="center">3</td>',
    ):
        assert fragment in html
    assert "style" not in html and "class" not in html
    assert_clean(html)


def test_raw_html_in_markdown_is_shown_as_text():
    html = render_markdown('<b>bold</b> <script>alert(1)</script> <a href="/x">x</a>')
    assert html == (
        "<p>&lt;b&gt;bold&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt; "
        '&lt;a href="/x"&gt;x&lt;/a&gt;</p>\n'
    )


def test_headings_are_demoted_below_the_pages_own():
    html = render_markdown("# One\n## Two\n### Three\n#### Four\n###### Six")
    assert html == "<h3>One</h3>\n<h4>Two</h4>\n<h5>Three</h5>\n<h6>Four</h6>\n<h6>Six</h6>\n"
    assert sanitize_html("<h1>a</h1><h2>b</h2><h3>c</h3>") == "<h3>a</h3><h3>b</h3><h3>c</h3>"


def test_presentation_and_event_attributes_are_dropped():
    html = sanitize_html(
        '<p style="color:red" class="x" id="y" onclick="alert(1)" data-x="1">text</p>'
        '<a href="/q" onmouseover="alert(1)" target="_blank" rel="opener">q</a>'
    )
    assert html == f'<p>text</p><a href="/q" rel="{LINK_REL}">q</a>'


def test_unknown_tags_are_unwrapped_and_code_tags_emptied():
    html = sanitize_html(
        "<div><span>kept</span></div><script>alert(1)</script><style>p{}</style>"
        "<iframe src=/x>frame</iframe><svg><text>drawn</text></svg><form><input></form>"
    )
    assert html == "kept"


# --- links ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a?b=c#d",
        "https://example.com",
        "HTTPS://EXAMPLE.COM",
        "mailto:jane@example.com",
        "/questions/12",
        "/",
    ],
)
def test_allowed_links_keep_their_url_and_get_rel(url):
    html = render_markdown(f"[go]({url})")
    assert f'rel="{LINK_REL}"' in html and "target" not in html
    assert safe_link_url(url) == url
    assert sanitize_html(f'<a href="{url}">go</a>') == f'<a href="{url}" rel="{LINK_REL}">go</a>'


REFUSED_LINKS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "\x01javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "java\x00script:alert(1)",
    "jav&#x09;ascript:alert(1)",
    "java&#x0A;script:alert(1)",
    "&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)",
    "&#x6A;avascript&colon;alert(1)",
    "javascript&colon;alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "data:image/png;base64,iVBORw0KGgo=",
    "file:///etc/passwd",
    "ftp://example.com",
    "//evil.example",
    "/\\evil.example",
    "/\t/evil.example",
    "\\\\evil.example",
    "relative/path",
    "#fragment",
    "?query",
]


@pytest.mark.parametrize("url", REFUSED_LINKS)
def test_other_links_lose_their_url(url):
    raw = sanitize_html(f'<a href="{url}" title="t">x</a>')
    assert "href" not in raw, raw
    assert_clean(render_markdown(f"[x]({url}) [y](<{url}>)"))
    assert safe_link_url(unescape(url)) is None


def test_bare_urls_and_addresses_are_linked():
    html = render_markdown("See https://example.com/docs, www.example.org or jane@example.com.")
    assert f'<a href="https://example.com/docs" rel="{LINK_REL}">' in html
    assert '<a href="http://www.example.org"' in html
    assert '<a href="mailto:jane@example.com"' in html
    assert_clean(html)


@pytest.mark.parametrize(
    ("source", "linked"),
    [
        ("文档见https://example.com/docs。谢谢！", "https://example.com/docs"),
        ("另见（https://example.com/a）", "https://example.com/a"),
        ("见https://example.com获取更多", "https://example.com"),
        ("请访问www.example.com获取更多信息", "www.example.com"),
        ("联系jane@example.com，谢谢", "jane@example.com"),
        (
            "路径https://zh.wikipedia.org/wiki/客户成功 可以",
            "https://zh.wikipedia.org/wiki/客户成功",
        ),
    ],
)
def test_a_bare_url_in_chinese_text_links_only_the_url(source, linked):
    html = render_markdown(source)
    assert re.findall(r">([^<]*)</a>", html) == [linked], html
    before, after = source.split(linked)
    assert to_plain_text(source) == source.strip()
    assert html.startswith(f"<p>{before}<a href=") and html.endswith(f"</a>{after}</p>\n")


def test_bare_protocol_relative_and_script_urls_are_not_linked():
    html = render_markdown("//evil.example javascript:alert(1) data:text/html,x")
    assert "<a" not in html


# --- images -----------------------------------------------------------------------------------


def test_images_are_dropped_unless_allowed_and_their_alt_text_stays():
    source = "Look: ![the chart](/uploads/7/chart.png)"
    assert render_markdown(source) == "<p>Look: the chart</p>\n"
    assert (
        render_markdown(source, allow_images=True)
        == '<p>Look: <img src="/uploads/7/chart.png" alt="the chart"></p>\n'
    )
    assert sanitize_html('<img src="/uploads/a.png" alt="a">') == ""
    assert (
        sanitize_html('<img src="/uploads/a.png" alt="a" onerror="x">', allow_images=True)
        == '<img src="/uploads/a.png" alt="a">'
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/pixel.png",
        "http://portal.example/uploads/a.png",
        "//evil.example/uploads/a.png",
        "/uploads//evil.example/a.png",
        "/uploads/../secret.png",
        "/uploads/%2e%2e/secret.png",
        "/uploads/%2E%2E%2Fsecret.png",
        "/uploads/..\\secret.png",
        "/static/logo.png",
        "uploads/a.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
    ],
)
def test_images_only_from_the_uploads(url):
    assert safe_image_url(url) is None
    html = render_markdown(f"![alt]({url})", allow_images=True)
    assert "<img" not in html and "alt" in html
    assert "src" not in sanitize_html(f'<img src="{url}" alt="alt">', allow_images=True)


def test_uploads_prefix_is_a_same_origin_path():
    assert UPLOADS_PREFIX.startswith("/") and not UPLOADS_PREFIX.startswith("//")
    assert safe_image_url(UPLOADS_PREFIX + "2026/11/a%20b.png") == "/uploads/2026/11/a%20b.png"


# --- plain text -------------------------------------------------------------------------------


def test_plain_text_is_what_a_reader_sees_on_one_line():
    text = to_plain_text(
        "# Title\n\nSome *emphasis* and a [link](https://example.com).\n\n"
        "- a < b & c\n- ![chart](/uploads/c.png)\n\n<b>not bold</b>"
    )
    assert text == "Title Some emphasis and a link. a < b & c chart <b>not bold</b>"
    assert to_plain_text("") == "" and to_plain_text("   \n\n ") == ""


# --- robustness -------------------------------------------------------------------------------

HOSTILE = {
    "NUL bytes": "a\x00b\x00" * 10,
    "lone surrogates": "x\ud800y\udfffz [a](/\ud83d)",
    "split surrogate pair": "\ud83d\ude00",
    "control characters": "".join(chr(c) for c in range(32)) + "\x7f\x85\x9f",
    "noncharacters": "\ufffe\uffff\U0010ffff",
    "10,000 >": ">" * 10_000 + " deep",
    "10,000 [": "[" * 10_000,
    "10,000 ![": "![" * 10_000,
    "25,000 ![ (the size limit)": "![" * 25_000,
    "unclosed links": "[x](" * 10_000,
    "nested images": "![" * 2_500 + "a" + "](/uploads/x.png)" * 2_500,
    "nested emphasis": "*" * 20_000 + "a" + "*" * 20_000,
    "emphasis soup": "*a **" * 9_000,
    "nested lists": "".join("  " * i + "- x\n" for i in range(300)),
    "blockquoted lists": "> - " * 5_000 + "x",
    "backticks": "`" * 40_000,
    "entities": "&#x" * 15_000,
    "many urls": "https://example.com/a/b www.example.org " * 1_100,
    "urls in chinese": "见https://a获" * 4_000,
    "addresses in chinese": "见www.a.cn/x。" * 3_500,
    "wide table": "|" + "a|" * 5_000 + "\n|" + "-|" * 5_000 + "\n|" + "1|" * 5_000,
    "newlines": "\n" * 49_000,
}


def _timed(call: Callable[[], str]) -> tuple[str, float]:
    """The CPU seconds the call took: on a busy machine (two suites and a browser on two
    cores) the wall clock counts the time spent waiting for a core, up to four times the work."""
    start = time.thread_time()
    result = call()
    return result, time.thread_time() - start


# "Within a second or so": the slowest of these takes about 0.9 s of CPU here; the bound leaves
# room for a slower machine without letting a quadratic path (tens of seconds) through.
SLOW = 3.0


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_markdown_renders_quickly_and_never_raises(source):
    html, seconds = _timed(lambda: render_markdown(source, allow_images=True))
    assert seconds < SLOW
    assert_clean(html, allow_images=True)
    html.encode("utf-8")  # storable: no lone surrogates survive
    assert "\x00" not in html
    text, seconds = _timed(lambda: to_plain_text(source))  # renders without images
    assert seconds < SLOW
    text.encode("utf-8")


HOSTILE_HTML = {
    "100,000 nested div": "<div>" * 100_000,
    "nested lists": "<ul><li>" * 50_000,
    "a megabyte of one tag": "<a b" * 250_000,
    "a megabyte of &": "&" * 1_000_000,
    "a megabyte of <": "<" * 1_000_000,
    "unclosed comment": "<!--" + "x" * 1_000_000,
    "misnested formatting": "<b></p><b>" * 4_000,
    "just under the tag limit": "<div>" * MAX_HTML_TAGS,
    "just under the size limit": "&amp;" * (MAX_HTML_CHARS // 5),
    "NUL and surrogates": "<p>\x00\ud800</p><a href='java\x00script:alert(1)'>x</a>",
}


@pytest.mark.parametrize("html", HOSTILE_HTML.values(), ids=HOSTILE_HTML.keys())
def test_hostile_html_is_sanitized_quickly_and_never_raises(html):
    clean, seconds = _timed(lambda: sanitize_html(html, allow_images=True))
    assert seconds < SLOW
    assert_clean(clean, allow_images=True)
    clean.encode("utf-8")


def test_input_that_is_not_plain_text_does_not_raise():
    from markupsafe import Markup

    assert render_markdown(None) == "" == sanitize_html(None) == to_plain_text(None)  # type: ignore[arg-type]
    assert render_markdown(b"**b** \xff") == "<p><strong>b</strong> \ufffd</p>\n"  # type: ignore[arg-type]
    assert render_markdown(Markup("a & <b>")) == "<p>a &amp; &lt;b&gt;</p>\n"
    assert type(render_markdown(Markup("x"))) is str


def test_a_source_with_too_many_brackets_is_kept_as_plain_paragraphs():
    links = "".join(f"[{i}](/q/{i}) " for i in range(MAX_LINK_BRACKETS))
    assert len(links) < MAX_MARKDOWN_CHARS
    assert render_markdown(links).count("<a href=") == MAX_LINK_BRACKETS
    html = render_markdown(links + "[one more](/q/x)")
    assert "<a " not in html and html.startswith("<p>[0](/q/0) [1](/q/1) ")


def test_past_the_size_guards_the_text_is_kept_as_plain_paragraphs():
    source = "**Long** post with <b>markup</b>\nand a second line.\n\n" * 2_000
    assert len(source) > MAX_MARKDOWN_CHARS
    html = render_markdown(source)
    assert html.startswith(
        "<p>**Long** post with &lt;b&gt;markup&lt;/b&gt;<br>\nand a second line.</p>\n"
    )
    assert html.count("<p>") == 2_000
    raw = "<p>kept <b>text</b> &amp; more</p>" * 4_000
    assert len(raw) > MAX_HTML_CHARS
    assert sanitize_html(raw).startswith("<p>kept  text  &amp; more")


def test_a_realistic_post_of_2_kb_and_one_of_1_mb_are_fast():
    post = (REALISTIC_POST * 2)[:2048]
    render_markdown(post)
    html, seconds = _timed(lambda: "".join(render_markdown(post) for _ in range(20)))
    assert seconds / 20 < 0.05  # measured: 2.4 ms a post
    big = (REALISTIC_POST * 600)[:1_000_000]
    _, seconds = _timed(lambda: render_markdown(big, allow_images=True))
    assert seconds < SLOW  # measured: 0.02 s (plain paragraphs past MAX_MARKDOWN_CHARS)
    _, seconds = _timed(lambda: to_plain_text(big))
    assert seconds < SLOW


def test_anything_typed_renders_without_raising():
    """A seeded fuzz over the characters that matter to Markdown and HTML."""
    alphabet = list("*_`~[]()<>!#>|-:/\\&;\"' \n\t\x00") + [
        "javascript:", "http://", "/uploads/", "](", "![", "<a href=", "&#x", "中文", "\ud800",
        "onerror=", "<img src=x ", "www.", "@example.com", "。", "  \n",
    ]  # fmt: skip
    rng = random.Random(20261125)
    for _ in range(400):
        source = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
        for allow_images in (False, True):
            assert_clean(render_markdown(source, allow_images=allow_images), allow_images=True)
            assert_clean(sanitize_html(source, allow_images=allow_images), allow_images=True)
        to_plain_text(source)


def test_rendering_is_the_same_from_many_threads():
    sources = [
        f"Item {i}: see https://example.com/{i}。谢谢 and www.example.org/{i}" for i in range(200)
    ]
    expected = [render_markdown(s) for s in sources]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(render_markdown, sources)) == expected


def test_sanitizing_stored_output_again_changes_nothing():
    for allow_images in (False, True):
        html = render_markdown(REALISTIC_POST, allow_images=allow_images)
        assert sanitize_html(html, allow_images=allow_images) == html
    for html in corpus_outputs()["markdown source"]:
        assert sanitize_html(html, allow_images=True) == html


def test_the_policy_is_kernel_code_importing_no_portal_module():
    tree = ast.parse(Path(policy.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0] for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }  # fmt: skip
    assert "portal" not in imported
    assert imported - sys.stdlib_module_names == {"nh3", "markdown_it", "linkify_it"}


# --- thousands of published XSS payloads ------------------------------------------------------


@cache
def xss_payloads() -> tuple[str, ...]:
    """Every distinct payload of brs-kb's database (4,400+ in 4.0.2), in a stable order."""
    from brs_kb.payloads import get_all_payloads

    return tuple(sorted({entry.payload for entry in get_all_payloads().values()}))


# How each payload reaches the policy, and whether images are allowed there.
MODES: dict[str, tuple[Callable[[str], str], bool]] = {
    "markdown source": (lambda p: render_markdown(p, allow_images=True), True),
    "markdown source, no images": (render_markdown, False),
    "markdown link": (lambda p: render_markdown(f"[x]({p}) [y](<{p}>)"), False),
    "markdown image": (
        lambda p: render_markdown(f"![x]({p}) ![y](<{p}>)", allow_images=True),
        True,
    ),
    "sanitize_html": (lambda p: sanitize_html(p, allow_images=True), True),
    "sanitize_html, no images": (sanitize_html, False),
}


@cache
def corpus_outputs() -> dict[str, tuple[str, ...]]:
    """Every payload through every mode (shared with the browser test)."""
    return {mode: tuple(render(p) for p in xss_payloads()) for mode, (render, _) in MODES.items()}


def test_the_corpus_is_thousands_of_payloads():
    payloads = xss_payloads()
    assert len(payloads) >= 4_000
    assert any("onerror" in p for p in payloads)
    assert any("javascript:" in p.lower() for p in payloads)


@pytest.mark.parametrize("mode", MODES)
def test_no_payload_survives(mode):
    _, allow_images = MODES[mode]
    failures = []
    for payload, output in zip(xss_payloads(), corpus_outputs()[mode], strict=True):
        problems = audit(output, allow_images=allow_images)
        if problems:
            failures.append(f"{payload!r}\n  -> {output!r}\n  {problems}")
    assert not failures, f"{len(failures)} payloads got through:\n" + "\n".join(failures[:20])


REALISTIC_POST = """## Exporting the monthly health report

Hi all, we are trying to automate the **monthly customer health report** for our CSM team.
Right now every CSM downloads the CSV from *Reports → Health* by hand, and we would like to
schedule it instead. Has anyone done this? We looked at https://example.com/docs/reports and
the [API guide](https://example.com/docs/api#exports "API") but could not find the endpoint.

What we tried so far:

1. Saved a filter on the *Accounts* page (ARR > 50k, renewal in 90 days)
2. Used the `GET /api/v1/reports/health?format=csv` call with our token
3. Got a `403 Forbidden` back — our token has the `reports:read` scope though

```python
resp = session.get(f"{BASE}/api/v1/reports/health", params={"format": "csv"})
resp.raise_for_status()
```

| Segment    | Accounts | Avg. health |
|:-----------|---------:|:-----------:|
| Enterprise |       42 |     78      |
| Mid-market |      310 |     64      |

> We also need the ~~old~~ new NPS column included, if possible.

客户成功经理如何使用**报表模板**？我们希望每月自动导出健康度报告，并发送给各区域负责人。
请问是否支持定时任务？谢谢！

Thanks in advance — contact me at jane.doe@example.com if you want the full logs.
"""
