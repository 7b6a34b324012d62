"""Search speed: the Cocreate search layer (Whoosh) against SQLite FTS5 on the same corpus.

A deterministic corpus of mixed English/Chinese documents (default 100,000; half public, half
private to one of 50 organizations) and 200 queries of 1–4 words (about a quarter Chinese,
some typed prefixes). Both engines answer the same queries for the same viewer (a customer
of organization 3: public documents and that organization's private ones) with 10 results:

- FTS5 (baseline): ``porter unicode61`` tokenizer, Chinese pre-segmented with jieba, BM25 with
  the title weighted 3x, visibility as a column in the WHERE clause;
- Cocreate: the real ``portal.search`` schema, ``reindex`` and ``query.search`` (facets, title
  boost, cached visibility filter, AND with the OR fallback, spelling when few results).

Also built in the same run: Whoosh alone (one field, the same analyzer, no positions, filter,
facets or stored text), the floor of what Whoosh itself does with this corpus and these queries.

Targets: Cocreate p95 <= 25 ms and p95 ratio (Cocreate / FTS5) <= 2.0; suggestions p95 <=
10 ms; full reindex >= 1,000 docs/s. Run: ``.venv/bin/python bench/search.py`` (about 10
minutes at full size on 2 cores) or ``--docs 10000`` for a quick look.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from whoosh import index as whoosh_index  # noqa: E402
from whoosh.fields import ID, TEXT, Schema  # noqa: E402
from whoosh.qparser import OrGroup, QueryParser  # noqa: E402

from portal.search import index, query  # noqa: E402
from portal.search.registry import SearchDocument, SearchSource, register_source  # noqa: E402
from portal.search.schema import text_analyzer  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import jieba  # noqa: E402

    jieba.setLogLevel(60)

EN_WORDS = [
    "account",
    "admin",
    "adoption",
    "agenda",
    "alert",
    "analytics",
    "api",
    "approval",
    "archive",
    "audit",
    "automation",
    "backup",
    "balance",
    "billing",
    "board",
    "browser",
    "budget",
    "bug",
    "calendar",
    "campaign",
    "cancel",
    "capacity",
    "certificate",
    "chart",
    "checklist",
    "churn",
    "client",
    "cloud",
    "cluster",
    "comment",
    "compliance",
    "config",
    "connector",
    "contract",
    "cost",
    "csv",
    "customer",
    "dashboard",
    "data",
    "database",
    "deadline",
    "delete",
    "deploy",
    "design",
    "digest",
    "domain",
    "download",
    "email",
    "endpoint",
    "error",
    "escalation",
    "event",
    "export",
    "feature",
    "feedback",
    "field",
    "file",
    "filter",
    "forecast",
    "form",
    "forum",
    "gateway",
    "goal",
    "group",
    "health",
    "import",
    "incident",
    "integration",
    "invoice",
    "issue",
    "kpi",
    "label",
    "latency",
    "launch",
    "layout",
    "license",
    "limit",
    "login",
    "meeting",
    "metric",
    "migration",
    "mobile",
    "module",
    "monitor",
    "notification",
    "nps",
    "onboarding",
    "order",
    "outage",
    "owner",
    "partner",
    "password",
    "payment",
    "permission",
    "pipeline",
    "plan",
    "policy",
    "portal",
    "price",
    "priority",
    "project",
    "quarter",
    "query",
    "quota",
    "release",
    "renewal",
    "report",
    "request",
    "retention",
    "review",
    "role",
    "roadmap",
    "rollout",
    "schedule",
    "schema",
    "score",
    "security",
    "segment",
    "server",
    "session",
    "settings",
    "sla",
    "snapshot",
    "sso",
    "status",
    "storage",
    "subscription",
    "support",
    "survey",
    "sync",
    "template",
    "tenant",
    "test",
    "ticket",
    "timeline",
    "token",
    "training",
    "trial",
    "upgrade",
    "upload",
    "usage",
    "user",
    "vendor",
    "version",
    "webhook",
    "widget",
    "workflow",
    "workspace",
    "how",
    "what",
    "why",
    "when",
    "can",
    "does",
    "should",
    "cannot",
    "unable",
    "best",
    "practice",
    "guide",
    "setup",
    "configure",
    "enable",
    "disable",
    "update",
    "change",
    "create",
    "share",
    "manage",
    "track",
    "improve",
    "reduce",
    "fix",
    "migrate",
    "weekly",
    "monthly",
    "quarterly",
    "annual",
    "new",
    "old",
    "custom",
    "default",
    "advanced",
    "basic",
    "shared",
    "private",
]
ZH_WORDS = [
    "客户",
    "成功",
    "经理",
    "如何",
    "报告",
    "模板",
    "季度",
    "业务",
    "回顾",
    "续约",
    "流失",
    "风险",
    "健康",
    "评分",
    "仪表盘",
    "数据",
    "导出",
    "导入",
    "权限",
    "设置",
    "用户",
    "管理",
    "集成",
    "接口",
    "升级",
    "版本",
    "发布",
    "路线图",
    "反馈",
    "建议",
    "问题",
    "答案",
    "培训",
    "上线",
    "流程",
    "自动化",
    "通知",
    "邮件",
    "账单",
    "发票",
    "合同",
    "安全",
    "登录",
    "单点登录",
    "性能",
    "延迟",
    "故障",
    "工单",
    "支持",
    "服务",
    "协议",
    "指标",
    "目标",
    "计划",
    "项目",
    "团队",
    "会议",
    "日程",
    "文档",
    "知识库",
    "社区",
    "插件",
    "配置",
]
TAGS = [
    *[
        "reporting",
        "billing",
        "sso",
        "api",
        "onboarding",
        "renewal",
        "health",
        "nps",
        "integrations",
        "security",
    ],
    *[
        "mobile",
        "export",
        "import",
        "analytics",
        "roadmap",
        "webhooks",
        "permissions",
        "performance",
    ],
    *["报告", "账单", "上线", "集成", "安全"],
]
ORGS = 50
VIEWER_ORG = 3


def _vocab(rng: random.Random) -> tuple[list[str], list[float]]:
    """Domain words plus 20,000 made-up product words, Zipf-weighted like real text."""
    made = set()
    syllables = [
        "ka",
        "lo",
        "mi",
        "zen",
        "tra",
        "vo",
        "pex",
        "qu",
        "ri",
        "sa",
        "te",
        "nu",
        "fi",
        "go",
        "har",
        "bel",
        "dor",
        "win",
    ]
    while len(made) < 20_000:
        made.add("".join(rng.choices(syllables, k=rng.randint(2, 4))))
    words = EN_WORDS + sorted(made)
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(words))]
    return words, weights


def _zh_vocab() -> tuple[list[str], list[float]]:
    """The domain words above plus the 8,000 most frequent words of jieba's dictionary,
    weighted by their frequency (a 64-word vocabulary would make every posting list long)."""
    jieba.dt.check_initialized()
    common = sorted(
        (w for w, f in jieba.dt.FREQ.items() if f > 0 and 2 <= len(w) <= 4 and w.isalpha()),
        key=lambda w: (-jieba.dt.FREQ[w], w),
    )[:8000]
    words = ZH_WORDS + [w for w in common if w not in ZH_WORDS]
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(words))]
    return words, weights


def make_corpus(count: int, seed: int = 42) -> list[SearchDocument]:
    rng = random.Random(seed)
    words, weights = _vocab(rng)
    zh_words, zh_weights = _zh_vocab()
    # cumulative weights once: ``choices`` would re-add 20,000 weights on every call
    weights, zh_weights = list(accumulate(weights)), list(accumulate(zh_weights))
    base = datetime(2026, 1, 1, tzinfo=UTC)
    docs = []
    for n in range(1, count + 1):
        chinese = rng.random() < 0.3
        if chinese:
            title = "".join(rng.choices(zh_words, cum_weights=zh_weights, k=rng.randint(3, 7)))
            body_words = rng.choices(zh_words, cum_weights=zh_weights, k=rng.randint(20, 90))
            body = "".join(w + ("，" if rng.random() < 0.1 else "") for w in body_words)
            if rng.random() < 0.3:  # mixed: some English product words in Chinese text
                body += " " + " ".join(rng.choices(words, cum_weights=weights, k=5))
        else:
            title = " ".join(
                rng.choices(words, cum_weights=weights, k=rng.randint(4, 10))
            ).capitalize()
            body = " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(30, 120)))
        private = rng.random() < 0.5
        org = rng.randint(1, ORGS)
        docs.append(
            SearchDocument(
                kind=rng.choice(["question", "question", "answer", "article"]),
                object_id=n,
                title=title,
                body=body,
                url=f"/d/{n}",
                updated_at=base + timedelta(minutes=n),
                private_to_org_id=org if private else None,
                owner_org_id=org,
                tags=tuple(rng.sample(TAGS, rng.randint(0, 3))),
                answered=rng.random() < 0.6,
            )
        )
    return docs


def make_queries(docs: list[SearchDocument], seed: int = 7) -> tuple[list[str], list[str]]:
    """200 queries of 1–4 words taken from titles (what people type), 200 prefixes."""
    rng = random.Random(seed)
    queries: list[str] = []
    prefixes: list[str] = []
    while len(queries) < 200:
        doc = rng.choice(docs)
        if any("\u4e00" <= c <= "\u9fff" for c in doc.title):
            pieces = [w for w in jieba.cut(doc.title) if w.strip()]
            k = rng.randint(1, min(3, len(pieces)))
            start = rng.randint(0, len(pieces) - k)
            queries.append("".join(pieces[start : start + k]))
        else:
            pieces = doc.title.lower().split()
            k = rng.randint(1, min(4, len(pieces)))
            start = rng.randint(0, len(pieces) - k)
            words = pieces[start : start + k]
            if rng.random() < 0.1:  # a typed prefix of the last word
                words[-1] = words[-1][: max(3, len(words[-1]) // 2)]
            queries.append(" ".join(words))
        title = rng.choice(docs).title
        word = title.split()[0] if " " in title else title
        prefixes.append(word[: rng.randint(2, 6)].lower())
    return queries, prefixes


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _segment(text: str) -> str:
    return " ".join(w for w in jieba.cut_for_search(text) if w.strip())


def build_fts(docs: list[SearchDocument], path: Path) -> tuple[sqlite3.Connection, float]:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE VIRTUAL TABLE docs USING fts5(title, body, vis UNINDEXED, "
        "tokenize='porter unicode61')"
    )
    started = time.perf_counter()
    rows = (
        (
            d.object_id,
            _segment(d.title),
            _segment(d.body + " " + " ".join(d.tags)),
            "public" if d.private_to_org_id is None else f"org:{d.private_to_org_id}",
        )
        for d in docs
    )
    db.executemany("INSERT INTO docs(rowid, title, body, vis) VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.execute("INSERT INTO docs(docs) VALUES ('optimize')")
    db.commit()
    return db, time.perf_counter() - started


def fts_query(db: sqlite3.Connection, text: str) -> list[Any]:
    words = [w for w in _segment(text).split() if w.isalnum()]
    if not words:
        return []
    match = " AND ".join('"' + w.replace('"', "") + '"' for w in words)
    return db.execute(
        "SELECT rowid, title FROM docs WHERE docs MATCH ? AND (vis = 'public' OR vis = ?) "
        "ORDER BY bm25(docs, 3.0, 1.0) LIMIT 10",
        (match, f"org:{VIEWER_ORG}"),
    ).fetchall()


def build_bare_whoosh(docs: list[SearchDocument], path: Path, procs: int) -> tuple[Any, float]:
    """Whoosh with as little as it can answer these queries with: one field of the same text
    and analyzer (jieba and stemming), no positions, no other field, no stored text but the
    id. Its speed is what Whoosh itself can do on this corpus."""
    schema = Schema(id=ID(stored=True), content=TEXT(analyzer=text_analyzer(), phrase=False))
    path.mkdir(parents=True, exist_ok=True)
    ix = whoosh_index.create_in(str(path), schema)
    started = time.perf_counter()
    writer = ix.writer(procs=procs, limitmb=256) if procs > 1 else ix.writer(limitmb=256)
    for d in docs:
        writer.add_document(id=str(d.object_id), content=index.to_fields(d)["content"])
    writer.commit()
    return ix, time.perf_counter() - started


def bare_whoosh_query(ix: Any) -> Any:
    """AND of the words, any word when none has all: the same fallback as Cocreate's."""
    searcher = ix.searcher()
    all_words = QueryParser("content", ix.schema)
    any_word = QueryParser("content", ix.schema, group=OrGroup)

    def run(text: str) -> list[str]:
        results = searcher.search(all_words.parse(text), limit=10)
        if results.scored_length() == 0:
            results = searcher.search(any_word.parse(text), limit=10)
        return [hit["id"] for hit in results]

    return run


def words_postings(ix: Any, text: str) -> int:
    """How many postings the query's words have (the same words whether ``bare_whoosh_query``
    asks for all of them or any): the lists Whoosh decodes and scores in Python."""
    with ix.searcher() as searcher:
        terms = set(QueryParser("content", ix.schema).parse(text).iter_all_terms())
        return sum(searcher.doc_frequency(field, term) for field, term in terms)


def why_slow(ix: Any, queries: list[str], times: list[float]) -> str:
    """How many postings the slowest 5% of queries have, and what each costs them."""
    postings = [words_postings(ix, q) for q in queries]
    threshold = pct(times, 95)
    slow = [(n, t) for n, t in zip(postings, times, strict=True) if t >= threshold]
    per_posting = sum(t for _, t in slow) / max(1, sum(n for n, _ in slow)) * 1000  # us
    return (
        f"the slowest 5% of queries have {statistics.mean(n for n, _ in slow):,.0f} postings, "
        f"{per_posting:.2f} us each: 25 ms covers ~{25_000 / per_posting:,.0f}"
    )


class Viewer:
    is_authenticated = True
    is_active = True
    is_staff = False
    organization_id = VIEWER_ORG


def timed(fn: Any, items: list[str], rounds: int = 3) -> list[float]:
    """Median of ``rounds`` runs per item, in milliseconds (after one warm-up pass)."""
    for item in items:
        fn(item)
    out = []
    for item in items:
        runs = []
        for _ in range(rounds):
            started = time.perf_counter()
            fn(item)
            runs.append((time.perf_counter() - started) * 1000)
        out.append(statistics.median(runs))
    return out


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limitmb", type=int, default=256)
    parser.add_argument("--keep", help="keep the index in this directory")
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip Whoosh alone (one field, no filter): what Whoosh itself can do",
    )
    args = parser.parse_args()

    print(f"corpus: {args.docs:,} documents ...", flush=True)
    docs = make_corpus(args.docs)
    by_id = {d.object_id: d for d in docs}
    queries, prefixes = make_queries(docs)
    for kind in ("question", "answer", "article"):
        mine = [d for d in docs if d.kind == kind]
        register_source(
            SearchSource(
                kind=kind,
                label=kind,
                load=lambda _s, ids: [by_id[i] for i in ids if i in by_id],
                catalog=lambda _s, mine=mine: ((d.object_id, d.updated_at) for d in mine),
            )
        )
    work = Path(args.keep or tempfile.mkdtemp(prefix="search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    root = work / "index"
    session = Session(create_engine("sqlite://"))

    print("FTS5 build ...", flush=True)
    fts_path = work / "fts.db"
    fts_path.unlink(missing_ok=True)
    fts, fts_seconds = build_fts(docs, fts_path)

    print(f"Whoosh reindex (procs={args.procs}, limitmb={args.limitmb}) ...", flush=True)
    stats = index.reindex(session, root=root, procs=args.procs, limitmb=args.limitmb)
    rebuild_rate = stats.documents / stats.seconds
    assert stats.caught_up == 0, f"reindex left {stats.caught_up} documents to catch up"
    viewer = Viewer()
    # Every query is run 3 times: measure the search itself, not the searcher's memory of
    # results it already gave (a repeated search costs a dict lookup; see qa_pages.py).
    query.RESULTS_CACHE_SIZE = 0
    query.search(None, viewer, "warm up", root=root)

    print("queries ...", flush=True)
    fts_ms = timed(lambda q: fts_query(fts, q), queries)
    cc_ms = timed(lambda q: query.search(None, viewer, q, root=root), queries)
    nofacet_ms = timed(lambda q: query.search(None, viewer, q, root=root, facets=False), queries)
    suggest_ms = timed(lambda p: query.suggest(viewer, p, root=root), prefixes)
    zero = sum(1 for q in queries if query.search(None, viewer, q, root=root).total == 0)
    zh = [q for q in queries if any("\u4e00" <= c <= "\u9fff" for c in q)]
    zh_ms = timed(lambda q: query.search(None, viewer, q, root=root), zh, rounds=1)
    bare_ms: list[float] = []
    if args.floor:
        print(f"Whoosh alone: one field, no positions (procs={args.procs}) ...", flush=True)
        bare, bare_seconds = build_bare_whoosh(docs, work / "bare", args.procs)
        bare_ms = timed(bare_whoosh_query(bare), queries)

    def row(name: str, values: list[float]) -> str:
        return (
            f"| {name:<38} | {pct(values, 50):8.2f} | {pct(values, 95):8.2f} "
            f"| {pct(values, 99):8.2f} |"
        )

    print()
    print(f"{args.docs:,} documents, {len(queries)} queries ({len(zh)} Chinese), 10 results")
    print("| what (ms)                              |      p50 |      p95 |      p99 |")
    print("|----------------------------------------|---------:|---------:|---------:|")
    print(row("SQLite FTS5 (baseline)", fts_ms))
    print(row("Cocreate search (facets, production)", cc_ms))
    print(row("Cocreate search without facets", nofacet_ms))
    print(row("Cocreate search, Chinese queries only", zh_ms))
    print(row("Cocreate suggest (edge n-gram Term)", suggest_ms))
    if bare_ms:
        print(row("Whoosh alone (1 field, no filter)", bare_ms))
    ratio = pct(cc_ms, 95) / pct(fts_ms, 95)
    print()
    print(f"| p95 ratio Cocreate / FTS5             | {ratio:.2f} (target <= 2.0) |")
    print(f"| Cocreate p95                          | {pct(cc_ms, 95):.1f} ms (target <= 25) |")
    print(
        f"| suggest p95                           | {pct(suggest_ms, 95):.1f} ms (target <= 10) |"
    )
    print(
        f"| full reindex                          | {rebuild_rate:,.0f} docs/s "
        f"({stats.seconds:.0f} s, target >= 1,000/s) |"
    )
    if bare_ms:
        print(
            f"| Whoosh alone, p95 / index             | {pct(bare_ms, 95):.1f} ms / "
            f"{args.docs / bare_seconds:,.0f} docs/s (the floor of Whoosh itself) |"
        )
        print(f"| Whoosh alone: why                     | {why_slow(bare, queries, bare_ms)} |")
    print(f"| FTS5 build (jieba pre-segmented)      | {args.docs / fts_seconds:,.0f} docs/s |")
    print(
        f"| index size Whoosh / FTS5              | {dir_size(Path(stats.directory)) / 1e6:.0f}"
        f" MB / {fts_path.stat().st_size / 1e6:.0f} MB |"
    )
    print(f"| queries with no result (after OR)     | {zero} of {len(queries)} |")
    short = sum(1 for p in prefixes if len(p) < 3 and not any("\u4e00" <= c <= "\u9fff" for c in p))
    print(f"| prefixes of 2 Latin letters (answer []) | {short} of {len(prefixes)} |")
    fts.close()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
