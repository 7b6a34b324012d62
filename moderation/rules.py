"""The moderation rules: pure decisions on one submission.

Plain data in (``Submission``, ``AuthorFacts``, ``CompiledWords``, ``RuleSettings``), plain data
out (``Decision``). No database, no Flask, no clock: the service gathers the facts and calls
``evaluate``. Only the standard library and ``re2`` (google-re2, a linear-time regex engine) are
imported.

Decisions
    * Staff are never held, refused or edited by these rules: ``evaluate`` returns PUBLISH with
      the text unchanged (moderators quote blocked words when they explain a removal, and
      vendor staff are accountable by other means).
    * REFUSE (blocked word, duplicate, rate limit) beats HOLD (held word, new user, link or
      image by a TL0 user, upload) beats PUBLISH. ``reasons`` lists the codes of the winning
      outcome only; CENSOR and REPLACE edits are applied to ``Decision.text`` whatever the
      outcome.
    * A TL0 user's link or image is held for review, never refused. Links are found in the
      Markdown source (any URL a reader can see or copy); images in the sanitized HTML the
      caller passes (``Submission.html``), so only an image readers will actually see counts,
      never "<img ...>" typed as text or an image the HTML policy drops.
    * Rate limits per trust level default to ``DEFAULT_RATE_LIMITS`` (Discourse-like: a new user
      may post once a minute and ten times a day; limits never shrink as trust grows, so more
      trust never turns PUBLISH into HOLD or REFUSE). A limit <= 0 means "no limit".

Watched words
    * Literal words match case-insensitively (``str.lower`` equality). A word with a Chinese,
      Japanese or Korean character in it matches as a substring (those scripts have no spaces
      between words). Any other word matches whole-word: where its first or last character is
      a word character (``\\w``: letter, digit, underscore) it must not touch another word
      character, so "ass" does not match "class" or "my_ass", but "spam" matches in "用spam软件"
      (a CJK character separates words). An edge that is no word character needs no boundary:
      "c++" matches in "c++11" but not in "abc++". Whitespace inside a phrase matches any run
      of whitespace.
    * One pass per engine: the whole-word words form one first-character-grouped alternation
      (Python ``re`` with ``\\b``: a position costs one test per distinct first character), the
      substring words one RE2 alternation (a DFA: its cost does not grow with the number of
      words). Matches are leftmost-longest and do not overlap within an engine.
    * Regex words (admins only) are compiled by RE2, so no pattern can backtrack
      catastrophically; they match case-insensitively on the text as written. RE2 has no
      backreferences or look-arounds, and its ``\\b``/``\\w`` are ASCII-only.
    * CENSOR masks every non-space character of the match with ``CENSOR_CHAR`` ("■", U+25A0):
      same length, and unlike "*" it is not Markdown syntax ("****" would render as a rule or
      emphasis). REPLACE substitutes ``replacement`` literally (no group references). Edits do
      not overlap (leftmost, then longest, wins); BLOCK and HOLD words count even where an edit
      overlaps them. The edited text is not scanned again.
    * When two entries have the same normalized word, the stricter action wins
      (BLOCK > HOLD > REPLACE > CENSOR).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

import re2

__all__ = [
    "CENSOR_CHAR",
    "DEFAULT_RATE_LIMITS",
    "AuthorFacts",
    "CompiledWords",
    "Decision",
    "Hit",
    "Outcome",
    "RuleSettings",
    "Submission",
    "WatchedWord",
    "WordAction",
    "compile_words",
    "count_images",
    "count_links",
    "evaluate",
    "regex_problem",
]

CENSOR_CHAR = "\u25a0"  # ■
MAX_PATTERN_LENGTH = 1000
MAX_REGEX_PROGRAM = 10_000  # RE2 instructions; `\pL{1,1000}` is far above, `(.*a){20}` far below
MAX_MESSAGE_WORD = 60
MAX_HITS = 10_000  # matching stops here and the post is held (reason "watched_word")


class Outcome(StrEnum):
    PUBLISH = "publish"
    HOLD = "hold"
    REFUSE = "refuse"


class WordAction(StrEnum):
    BLOCK = "block"
    HOLD = "hold"
    CENSOR = "censor"
    REPLACE = "replace"


_SEVERITY = {WordAction.BLOCK: 3, WordAction.HOLD: 2, WordAction.REPLACE: 1, WordAction.CENSOR: 0}


@dataclass(frozen=True)
class WatchedWord:
    pattern: str  # a word/phrase (English or Chinese), or a regex when is_regex
    action: WordAction
    replacement: str = ""  # for REPLACE
    is_regex: bool = False


@dataclass(frozen=True)
class AuthorFacts:
    trust_level: int  # 0-4
    is_staff: bool
    published_posts: int  # posts of theirs already published (approved)
    posts_last_minute: int  # posts submitted in the last 60 s (before this one)
    posts_today: int  # posts submitted in the last 24 h (before this one)
    identical_recent: bool  # an identical post (same normalized text) in the duplicate window


@dataclass(frozen=True)
class Submission:
    kind: str  # "question", "answer", "profile_about", "template", ...: carried, not used yet
    text: str  # the Markdown source the author wrote (title + body joined by the caller)
    has_upload: bool = False
    # The sanitized HTML readers will see (the kind's rendering of ``text``). Images are
    # counted here, so only an image the HTML policy keeps counts: "<img ...>" typed in the
    # text is shown as text, and an image the policy drops shows only its alt text.
    html: str = ""


# (posts per minute, posts per day) by trust level; a level missing from a configured mapping
# uses the nearest level below it. Non-decreasing in trust, like Discourse's new-user limits
# (TL0: one post a minute, ten a day) relaxed step by step up to TL4.
DEFAULT_RATE_LIMITS: Mapping[int, tuple[int, int]] = MappingProxyType(
    {0: (1, 10), 1: (3, 40), 2: (6, 100), 3: (10, 250), 4: (20, 1000)}
)


@dataclass(frozen=True)
class RuleSettings:
    """Vendor-admin configurable; the defaults are the product defaults."""

    new_user_hold_posts: int = 2  # TL0: first N posts held for review
    new_user_links_allowed: bool = False  # TL0: links held
    new_user_images_allowed: bool = False  # TL0: images held
    upload_auto_publish_level: int = 3  # uploads held unless trust >= this (or staff)
    rate_limits: Mapping[int, tuple[int, int]] = field(default_factory=lambda: DEFAULT_RATE_LIMITS)
    duplicate_window_minutes: int = 10  # read by the service when it computes identical_recent

    def limits_for(self, trust_level: int) -> tuple[int, int]:
        """(per minute, per day) for a trust level; <= 0 means no limit."""
        levels = sorted(int(k) for k in self.rate_limits)
        if not levels:
            return (0, 0)
        below = [k for k in levels if k <= trust_level]
        per_minute, per_day = self.rate_limits[below[-1] if below else levels[0]]
        return int(per_minute), int(per_day)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    text: str  # the text to store: censored/replaced words applied
    reasons: tuple[str, ...]  # machine codes of the outcome (held or refused), in a fixed order
    message: str = ""  # for REFUSE: the sentence(s) the author sees
    matched_words: tuple[str, ...] = ()  # patterns of every watched word that matched
    blocked_words: tuple[str, ...] = ()  # the blocked words as written in the post (for i18n)


class Hit(NamedTuple):
    """One watched-word match: ``text[start:end]`` matched ``word``."""

    start: int
    end: int
    word: WatchedWord


# --- characters --------------------------------------------------------------------------

# Scripts written without spaces between words. A word containing one of these characters is
# matched as a substring; next to one of them a Latin word is still a whole word ("用spam软件").
_CJK = (
    "\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003ffff"
)
_CJK_RUN = re.compile(f"[{_CJK}]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _is_word_char(ch: str) -> bool:
    """What Python's ``\\w`` matches: a letter or digit of any script, or the underscore."""
    return ch.isalnum() or ch == "_"


def _whole_word(key: str) -> bool:
    """Whole-word matching for words without CJK whose first or last character is a word char."""
    return not _CJK_RUN.search(key) and (_is_word_char(key[0]) or _is_word_char(key[-1]))


def _blank_cjk(text: str) -> str:
    """CJK characters -> NUL (same length): for the whole-word matcher they separate words."""
    if text.isascii():
        return text
    return _CJK_CHAR.sub("\x00", text)


def _clean(text: str) -> str:
    """Lone surrogates -> U+FFFD (same length), so the text encodes as UTF-8 for RE2."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text)
    return text


def _lower(text: str) -> str:
    """``str.lower`` that keeps every character at its offset (only U+0130 would grow)."""
    return text.replace("\u0130", "i").lower() if "\u0130" in text else text.lower()


def _key(word: str) -> str:
    return " ".join(_lower(word).split())


def _re2_options(
    *, case_sensitive: bool, longest_match: bool = False, max_mem: int = 8 << 20
) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.longest_match = longest_match
    options.log_errors = False  # RE2 would print to stderr, e.g. when a DFA cache fills up
    options.never_capture = True
    options.max_mem = max_mem  # RE2's default; over budget it falls back to slower, still linear
    return options


# --- compiled watched words ----------------------------------------------------------------


class CompiledWords:
    """A precompiled matcher for a list of watched words; build it once with ``compile_words``.

    ``skipped`` lists the entries that cannot be matched (empty, too long, an invalid regex,
    unencodable characters): they are ignored rather than breaking every submission.
    """

    def __init__(self, words: Iterable[WatchedWord]) -> None:
        literal: dict[str, WatchedWord] = {}
        regexes: list[tuple[Any, WatchedWord]] = []
        skipped: list[WatchedWord] = []
        kept: list[WatchedWord] = []
        for word in words:
            pattern = word.pattern.strip()
            if not pattern or len(pattern) > MAX_PATTERN_LENGTH or _SURROGATES.search(pattern):
                skipped.append(word)
            elif word.is_regex:
                if regex_problem(pattern) is not None:
                    skipped.append(word)
                    continue
                regexes.append((re2.compile(pattern, _re2_options(case_sensitive=False)), word))
                kept.append(word)
            else:
                key = _key(pattern)
                known = literal.get(key)
                if known is None or _SEVERITY[word.action] > _SEVERITY[known.action]:
                    literal[key] = word
                kept.append(word)
        self.words: tuple[WatchedWord, ...] = tuple(kept)
        self.skipped: tuple[WatchedWord, ...] = tuple(skipped)
        self._literal = literal
        self._whole = _whole_word_matcher([k for k in literal if _whole_word(k)])
        self._substring = _substring_matcher([k for k in literal if not _whole_word(k)])
        self._regexes = regexes
        self._any_regex = None
        if len(regexes) > 1:
            combined = "|".join(f"(?:{rx.pattern})" for rx, _ in regexes)
            try:
                self._any_regex = re2.compile(combined, _re2_options(case_sensitive=False))
            except re2.error:  # pragma: no cover - each part compiled on its own
                self._any_regex = None

    def __len__(self) -> int:
        return len(self.words)

    def matches(self, text: str, limit: int = MAX_HITS) -> list[Hit]:
        """The matches in text order, at most ``limit`` of them (see ``scan``)."""
        return self.scan(text, limit)[0]

    def scan(self, text: str, limit: int = MAX_HITS) -> tuple[list[Hit], bool]:
        """(matches in text order, True when matching stopped at ``limit`` matches).

        The engines do not overlap internally; a whole-word, a substring and a regex match may
        overlap each other. The limit bounds the time spent on a hostile text (a megabyte of
        one censored word); no honest post comes near it.
        """
        hits: list[Hit] = []
        if not text or not (self._literal or self._regexes):
            return hits, False
        clean = _clean(text)
        # (engine, text to search, the word for a regex; None: look the literal word up)
        engines: list[tuple[Any, str, WatchedWord | None]] = []
        if self._literal:
            low = _lower(clean)
            if self._whole is not None:
                engines.append((self._whole, _blank_cjk(low), None))
            if self._substring is not None:
                engines.append((self._substring, low, None))
        if self._regexes and (self._any_regex is None or self._any_regex.search(clean)):
            engines += [(rx, clean, word) for rx, word in self._regexes]
        literal = self._literal
        add = hits.append
        runs = 0
        for engine, haystack, fixed in engines:
            before = len(hits)
            word = fixed
            for m in engine.finditer(haystack):
                start, end = m.span()
                if end <= start:
                    continue
                if fixed is None:
                    found = m.group()
                    word = literal.get(found) or literal.get(" ".join(found.split()))
                    if word is None:  # pragma: no cover - keys and text are lowered alike
                        continue
                add(Hit(start, end, word))
                if len(hits) >= limit:
                    break
            runs += len(hits) > before
            if len(hits) >= limit:
                if runs > 1:
                    hits.sort(key=_hit_order)
                return hits, True
        if runs > 1:
            hits.sort(key=_hit_order)
        return hits, False


def _hit_order(hit: Hit) -> tuple[int, int]:
    return hit.start, hit.start - hit.end


def compile_words(words: Iterable[WatchedWord]) -> CompiledWords:
    return CompiledWords(words)


def _whole_word_matcher(keys: list[str]) -> re.Pattern[str] | None:
    """One alternation for the whole-word words, grouped by first character.

    ``\\b(?:a(?:lpha\\b|b\\b|...)|b(?:...))|\\.(?:net\\b)``: the engine's branch skips a group on
    its first character, so a position costs one test per distinct first character, not one
    per word; inside a group the longest alternative comes first, so the longest word wins.
    ``\\b`` stands only at edges that are word characters ("c++" has none at its end).
    """
    if not keys:
        return None
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(key[0], []).append(key)
    at_word: list[str] = []
    other: list[str] = []
    for first, members in sorted(groups.items()):
        alternatives = []
        for key in sorted(members, key=len, reverse=True):
            parts = key.split(" ")
            rest = r"\s+".join(re.escape(p) for p in [parts[0][1:], *parts[1:]])
            alternatives.append(rest + (r"\b" if _is_word_char(key[-1]) else ""))
        branch = f"{re.escape(first)}(?:{'|'.join(alternatives)})"
        (at_word if _is_word_char(first) else other).append(branch)
    branches = [rf"\b(?:{'|'.join(at_word)})"] if at_word else []
    branches += other
    return re.compile("|".join(branches))


def _substring_matcher(keys: list[str]) -> Any:
    """One RE2 alternation (a DFA) for words matched as substrings (Chinese, punctuation)."""
    if not keys:
        return None
    pattern = "|".join(
        r"[\s\pZ]+".join(re2.escape(p) for p in key.split(" "))
        for key in sorted(keys, key=len, reverse=True)
    )
    options = _re2_options(case_sensitive=True, longest_match=True, max_mem=64 << 20)
    return re2.compile(pattern, options)


def _edit(text: str, hits: list[Hit]) -> str:
    pieces: list[str] = []
    pos = 0
    for hit in hits:
        action = hit.word.action
        if action not in (WordAction.CENSOR, WordAction.REPLACE) or hit.start < pos:
            continue
        pieces.append(text[pos : hit.start])
        if action is WordAction.CENSOR:
            found = text[hit.start : hit.end]
            if _WHITESPACE.search(found):
                pieces.append("".join(c if c.isspace() else CENSOR_CHAR for c in found))
            else:
                pieces.append(CENSOR_CHAR * len(found))
        else:
            pieces.append(hit.word.replacement)
        pos = hit.end
    if not pieces:
        return text
    pieces.append(text[pos:])
    return "".join(pieces)


# --- regex safety ----------------------------------------------------------------------------


def regex_problem(pattern: str) -> str | None:
    """Why an admin's regex is refused, or None when it is safe to use.

    Patterns are compiled by RE2, whose matching time is linear in the text for every
    pattern, so nested quantifiers such as ``(a+)+$`` are safe and accepted. Refused: syntax
    errors, features RE2 lacks (backreferences, look-arounds), patterns that match empty text
    (they would match everywhere), and patterns whose compiled program is too large.
    """
    if not pattern or not pattern.strip():
        return "Enter a pattern."
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"Use at most {MAX_PATTERN_LENGTH} characters."
    if _SURROGATES.search(pattern):
        return "The pattern contains characters that are not valid text."
    try:
        compiled = re2.compile(pattern, _re2_options(case_sensitive=False))
    except re2.error as error:
        detail = error.args[0] if error.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                re.compile(pattern)
            except (re.error, RecursionError, OverflowError, ValueError) as syntax:
                return f"This is not a valid regular expression: {syntax}."
        return (
            "This pattern uses a feature the safe matcher does not support "
            f"(backreferences, lookahead or lookbehind): {detail}."
        )
    if compiled.programsize > MAX_REGEX_PROGRAM:
        return "This pattern is too complex: simplify it or split it into several."
    if compiled.search("") is not None or any(
        m.end() == m.start() for m in compiled.finditer("a A 1 中文 _.")
    ):
        return "This pattern matches empty text, so it would match everywhere."
    return None


# --- links and images ----------------------------------------------------------------------

_TLDS = (
    "com|net|org|io|co|cn|info|biz|xyz|top|site|online|shop|store|club|vip|ru|me|ly|gl|gg|tk|"
    "ml|ga|cf|link|click|live"
)
# One leftmost-first pass over the Markdown source; each alternative consumes what it contains
# (an image's URL is no link). Raw HTML is not markup here (the HTML policy shows it as text),
# so "<a href=x>" or "<img src=x>" is no link or image of itself: only a URL in it, which
# readers see and which is linked, counts as a link.
_LINKS = re2.compile(
    "(?m)"
    r"!\[[^\]\n]*\]\s?(?:\([^)\n]*\)|\[[^\]\n]*\])"  # image: ![alt](src) or ![alt][ref]
    r"|[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)+"  # a bare e-mail address: no link
    r"|\[[^\]\n]*\]\s?(?:\([^)\n]*\)|\[[^\]\n]*\])"  # [text](url) or [text][ref]
    r"|^[ ]{0,3}\[[^\]\n]+\]:[ \t]*\S+"  # [ref]: url
    r"|<[a-z][a-z0-9+.\-]{1,31}:[^\s<>]*>|<[^\s@<>]+@[^\s@<>]+>"  # <scheme:...>, <a@b.c>
    r"|(?:https?|ftp)://[^\s<>]+|\bwww\.[^\s<>]+"  # bare URL
    rf"|\b[a-z0-9][a-z0-9\-]*(?:\.[a-z0-9\-]+)*\.(?:{_TLDS})\b",  # bare domain: cheap-pills.com
    _re2_options(case_sensitive=False),
)


def _is_link(found: str) -> bool:
    """Whether one match of ``_LINKS`` is a link (not an image, not a bare e-mail address)."""
    first = found[0]
    if first == "!":
        return False
    return first in "<[ " or "@" not in found or "://" in found or found[:4].lower() == "www."


def _links(text: str, limit: int | None = None) -> int:
    """How many links. With ``limit``, only whether there is one: the count stops at the first
    link, and after ``limit`` matches that are no link (e-mail addresses, images) the text
    counts as linked, so a hostile text costs no more than ``limit`` matches."""
    links = 0
    if not text:
        return 0
    for seen, m in enumerate(_LINKS.finditer(_clean(text)), 1):
        if _is_link(m.group()):
            links += 1
            if limit is not None:
                return links
        elif limit is not None and seen >= limit:
            return 1
    return links


def count_links(text: str) -> int:
    """Markdown links, reference definitions, autolinks, bare URLs (also inside raw HTML typed
    as text, which readers see and which is linked) and bare domains with a common TLD
    (``cheap-pills.com``). Images and bare e-mail addresses are not links, nor is raw HTML
    without a URL in it (``<a href=x>`` is shown as text). Code spans are counted too: a URL
    there is still a URL a reader can copy."""
    return _links(text)


# After sanitizing, tags are normalised and "<" in text or attributes is escaped, so a plain
# pattern is exact on the HTML the policy produced.
_IMG_TAG = re.compile(r"<img[\s/>]", re.IGNORECASE)


def count_images(html: str) -> int:
    """The images a reader will see: ``<img>`` elements in the sanitized HTML of a post (the
    Markdown images the HTML policy kept). Escaped "&lt;img&gt;" text is no image."""
    return len(_IMG_TAG.findall(html)) if html else 0


# --- the decision ----------------------------------------------------------------------------


def _quote(word: str) -> str:
    return f'"{word[:MAX_MESSAGE_WORD]}{"…" if len(word) > MAX_MESSAGE_WORD else ""}"'


def _blocked(text: str, hits: list[Hit]) -> tuple[str, ...]:
    """The blocked words as the author wrote them, once each (case-insensitively)."""
    found: dict[str, str] = {}
    for hit in hits:
        if hit.word.action is WordAction.BLOCK:
            written = _CONTROL.sub("\ufffd", " ".join(text[hit.start : hit.end].split()))
            found.setdefault(_key(written), written)
    return tuple(found.values())


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def evaluate(
    submission: Submission,
    author: AuthorFacts,
    words: CompiledWords,
    settings: RuleSettings | None = None,
) -> Decision:
    """Decide PUBLISH, HOLD or REFUSE for one submission; never raises on any text.

    A text with more than ``MAX_HITS`` watched-word matches is held ("watched_word") with the
    edits made so far: only a hostile post gets there, and a moderator should see it.
    """
    text = submission.text or ""
    if author.is_staff:
        return Decision(Outcome.PUBLISH, text, ())
    settings = settings if settings is not None else RuleSettings()

    hits, too_many = words.scan(text)
    stored = _edit(text, hits)
    blocked = _blocked(text, hits)
    held_word = too_many or any(h.word.action is WordAction.HOLD for h in hits)

    refuse: list[str] = []
    messages: list[str] = []
    if blocked:
        refuse.append("blocked_word")
        quoted = ", ".join(_quote(w) for w in blocked)
        noun = "word" if len(blocked) == 1 else "words"
        messages.append(f"Your post contains the blocked {noun} {quoted}.")
    if author.identical_recent:
        refuse.append("duplicate")
        messages.append("You posted the same text a moment ago.")
    per_minute, per_day = settings.limits_for(author.trust_level)
    if per_minute > 0 and author.posts_last_minute >= per_minute:
        refuse.append("rate_limit_minute")
        messages.append("You are posting too fast: wait a minute and try again.")
    if per_day > 0 and author.posts_today >= per_day:
        refuse.append("rate_limit_day")
        messages.append(
            f"Daily limit reached: you can post {per_day} times a day. Try again tomorrow."
        )

    hold: list[str] = []
    if held_word:
        hold.append("watched_word")
    if author.trust_level <= 0:
        if author.published_posts < settings.new_user_hold_posts:
            hold.append("new_user")
        if not settings.new_user_links_allowed and _links(text, limit=MAX_HITS):
            hold.append("link_by_new_user")
        if not settings.new_user_images_allowed and _IMG_TAG.search(submission.html or ""):
            hold.append("image_by_new_user")
    if submission.has_upload and author.trust_level < settings.upload_auto_publish_level:
        hold.append("upload")

    matched = _unique(h.word.pattern for h in hits)
    if refuse:
        return Decision(Outcome.REFUSE, stored, tuple(refuse), " ".join(messages), matched, blocked)
    if hold:
        return Decision(Outcome.HOLD, stored, tuple(hold), "", matched)
    return Decision(Outcome.PUBLISH, stored, (), "", matched)
