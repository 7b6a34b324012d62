"""Speed of ``moderation.rules.evaluate`` with 1,000 watched words against the naive scan.

What it measures
    Time per post of ``evaluate(...)`` (watched words, censoring, rate limits, link and image
    counting: the whole decision) for 200 deterministic 2 KB posts of mixed English and
    Chinese text, some of them with watched words, against 1,000 deterministic watched words
    (about half English, half Chinese, 1% regexes, all four actions). The ten regexes include
    the textbook catastrophic ones, ``(a+)+$`` and ``(.*a){20}`` (RE2 runs them in linear
    time); the latter matches most posts, so every post pays for all ten. The author is a TL0
    user so that every rule runs, the link and image scan included.

    Baseline, in the same run and on the same posts: the naive approach, ``text.lower()`` then
    ``word in text`` for each of the 1,000 words (which finds only substrings: no whole-word
    rule, no regexes, no censoring), so the ratio is what the real rules cost against the
    cheapest possible loop.

    Target: ``evaluate`` median <= 1 ms per post. The script always exits 0: it is a
    measurement, not a test. The last line starts with ``SUMMARY:``.

How to run
    .venv/bin/python bench/moderation_rules.py
    .venv/bin/python bench/moderation_rules.py --rounds 20 --posts 500

Why the baseline is in the same run
    Absolute times depend on the machine and its load; evaluate and the baseline are
    interleaved post by post, so both see the same conditions and the ratio is comparable
    across machines.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moderation.rules import (  # noqa: E402 - after the path set-up
    AuthorFacts,
    RuleSettings,
    Submission,
    WatchedWord,
    WordAction,
    compile_words,
    evaluate,
)

SEED = 20240611
TARGET_MS = 1.0

# Common Han characters: Chinese words and filler are drawn from these.
HAN = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过"
    "子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体"
    "制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内"
    "数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提"
    "直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计"
    "别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海"
    "口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身"
    "车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石"
)
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


def english_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def chinese_word(rng: random.Random) -> str:
    return "".join(rng.choice(HAN) for _ in range(rng.randint(2, 4)))


def make_words(rng: random.Random, n: int = 1000) -> list[WatchedWord]:
    actions = [WordAction.CENSOR] * 60 + [WordAction.REPLACE] * 20 + [WordAction.HOLD] * 15
    actions += [WordAction.BLOCK] * 5
    regexes = [
        r"\bfree\s+(?:money|coins)\b",
        r"(?:buy|cheap)\s+\w+pills",
        r"\b[a-z]{3,8}\d{4,}@spam\.example\b",
        r"(a+)+$",
        r"加微信\s*\w{5,}",
        r"\bcasino\w*\b",
        r"(?:\d{3}[- ]?){2}\d{4}",
        r"优惠券.{0,6}领取",
        r"\bviagra\b",
        r"(.*a){20}",
    ]
    words: list[WatchedWord] = []
    seen: set[str] = set()
    while len(words) < n - len(regexes):
        if rng.random() < 0.5:
            pattern = english_word(rng)
            if rng.random() < 0.1:
                pattern += " " + english_word(rng)
        else:
            pattern = chinese_word(rng)
        if pattern in seen:
            continue
        seen.add(pattern)
        action = rng.choice(actions)
        words.append(
            WatchedWord(pattern, action, "[removed]" if action is WordAction.REPLACE else "")
        )
    words += [WatchedWord(p, WordAction.HOLD, is_regex=True) for p in regexes]
    return words


def make_posts(rng: random.Random, words: list[WatchedWord], n: int = 200) -> list[str]:
    literal = [w.pattern for w in words if not w.is_regex]
    mild = [w.pattern for w in words if not w.is_regex and w.action is not WordAction.BLOCK]
    posts = []
    for i in range(n):
        pieces: list[str] = []
        size = 0
        while size < 2048:
            roll = rng.random()
            if roll < 0.45:
                piece = " ".join(english_word(rng) for _ in range(rng.randint(3, 12))) + ". "
            elif roll < 0.9:
                piece = "".join(rng.choice(HAN) for _ in range(rng.randint(8, 30))) + "。"
            elif roll < 0.95:
                piece = f"See [the docs](https://docs.example.com/{english_word(rng)}) or www.example.org. "
            else:
                piece = "\n\n```\nprint('hello')\n```\n\n"
            pieces.append(piece)
            size += len(piece.encode("utf-8"))
        if i % 3 == 0:  # a third of the posts contain watched words (blocked ones rarely)
            pool = literal if i % 30 == 0 else mild
            for _ in range(rng.randint(1, 3)):
                pieces.insert(rng.randrange(len(pieces)), f" {rng.choice(pool)} ")
        posts.append("".join(pieces)[:2048] if i % 2 else "".join(pieces))
    return posts


def naive(text: str, lowered_words: list[str]) -> list[str]:
    low = text.lower()
    return [w for w in lowered_words if w in low]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    rng = random.Random(SEED)
    words = make_words(rng, args.words)
    posts = make_posts(rng, words, args.posts)
    started = time.perf_counter()
    compiled = compile_words(words)
    compile_ms = (time.perf_counter() - started) * 1000
    lowered = [w.pattern.lower() for w in words if not w.is_regex]
    author = AuthorFacts(
        trust_level=0,
        is_staff=False,
        published_posts=5,
        posts_last_minute=0,
        posts_today=0,
        identical_recent=False,
    )
    settings = RuleSettings()
    submissions = [Submission("answer", text) for text in posts]

    for submission in submissions[:20]:  # warm-up: RE2 builds its DFA states lazily
        evaluate(submission, author, compiled, settings)
        naive(submission.text, lowered)

    rules_ms: list[float] = []
    naive_ms: list[float] = []
    outcomes: dict[str, int] = {}
    clock = time.perf_counter_ns
    for _ in range(args.rounds):
        for submission in submissions:
            t0 = clock()
            decision = evaluate(submission, author, compiled, settings)
            t1 = clock()
            naive(submission.text, lowered)
            t2 = clock()
            rules_ms.append((t1 - t0) / 1e6)
            naive_ms.append((t2 - t1) / 1e6)
            outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1

    sizes = [len(p.encode("utf-8")) for p in posts]
    rules_median, naive_median = statistics.median(rules_ms), statistics.median(naive_ms)
    verdict = "PASS" if rules_median <= TARGET_MS else "FAIL"
    print(
        f"Python {sys.version.split()[0]}; {len(words)} watched words "
        f"({sum(w.is_regex for w in words)} regexes, {len(compiled.skipped)} skipped), "
        f"{len(posts)} posts of {min(sizes)}-{max(sizes)} bytes, {args.rounds} rounds"
    )
    print(f"compile_words: {compile_ms:.1f} ms (once per change of the list)")
    print(
        "outcomes per round: "
        + ", ".join(f"{k} {v // args.rounds}" for k, v in sorted(outcomes.items()))
    )
    print()
    print(f"| {'per post':<44} | {'median ms':>9} | {'p95 ms':>8} | {'vs naive':>8} |")
    print(f"|{'-' * 46}|{'-' * 11}|{'-' * 10}|{'-' * 10}|")
    print(
        f"| {'naive: lower() + `in` x 1,000 (baseline)':<44} | {naive_median:>9.3f} | "
        f"{pct(naive_ms, 0.95):>8.3f} | {1.0:>7.2f}x |"
    )
    print(
        f"| {'evaluate(): one matcher, all rules':<44} | {rules_median:>9.3f} | "
        f"{pct(rules_ms, 0.95):>8.3f} | {rules_median / naive_median:>7.2f}x |"
    )
    print()
    print(f"target: evaluate median <= {TARGET_MS:.1f} ms -> {verdict}")
    print(
        f"SUMMARY: evaluate median {rules_median:.3f} ms, p95 {pct(rules_ms, 0.95):.3f} ms; "
        f"naive median {naive_median:.3f} ms; ratio {rules_median / naive_median:.2f}; {verdict}"
    )


if __name__ == "__main__":
    main()
