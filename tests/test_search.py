"""Search: indexing after commit, English and Chinese matching, visibility through every door
(page, suggestions, API), filters, facets, spelling, the OR fallback, hostile input, rebuild
and check, and concurrent readers with a writer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from whoosh.codec.whoosh3 import W3Codec
from whoosh.index import open_dir

from portal.core.identity import Role
from portal.search import index, query
from portal.search.cli import search_group
from portal.search.registry import SearchDocument, SearchSource, sources
from tests.conftest import count_statements, login
from tests.factories import OrganizationFactory, UserFactory, staff

KIND = "note"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Store:
    """A tiny in-memory search source: what the database would say is indexable now."""

    docs: dict[int, SearchDocument] = field(default_factory=dict)
    loads: list[list[int]] = field(default_factory=list)

    def put(self, object_id: int, title: str, body: str = "", **kwargs) -> SearchDocument:
        kwargs.setdefault("updated_at", T0 + timedelta(minutes=object_id))
        doc = SearchDocument(
            kind=KIND,
            object_id=object_id,
            title=title,
            body=body,
            url=f"/notes/{object_id}",
            **kwargs,
        )
        self.docs[object_id] = doc
        return doc

    def load(self, _session, ids):
        self.loads.append(list(ids))
        return [self.docs[i] for i in ids if i in self.docs]

    def catalog(self, _session):
        return [(d.object_id, d.updated_at) for d in self.docs.values()]


@pytest.fixture
def store(monkeypatch) -> Store:
    store = Store()
    from portal.search import registry

    monkeypatch.setitem(
        registry._SOURCES, KIND, SearchSource(KIND, "Notes", store.load, store.catalog)
    )
    return store


def index_all(app, store: Store) -> None:
    with app.app_context():
        index.apply_updates(None, [(KIND, i) for i in store.docs])


def search(app, user, text, **kwargs) -> query.SearchResults:
    with app.app_context():
        return query.search(None, user, text, **kwargs)


def titles(found: query.SearchResults) -> list[str]:
    return [h.title for h in found.hits]


# --- the write path ----------------------------------------------------------------------


def test_schedule_indexes_after_commit_and_forgets_on_rollback(app, session, store):
    store.put(1, "Quarterly business review deck")
    store.put(2, "Renewal playbook")
    with app.app_context():
        index.schedule(session, KIND, 2)
        session.rollback()  # the change never happened: nothing is sent
        assert store.loads == []
        index.schedule(session, KIND, 1)
        index.schedule(session, KIND, 1)
        assert search(app, None, "quarterly").total == 0  # not before commit
        session.commit()
    assert store.loads == [[1]]  # once, after commit, inline
    assert titles(search(app, None, "quarterly")) == ["Quarterly business review deck"]
    assert search(app, None, "renewal").total == 0

    # Hidden or deleted: the source no longer returns it, so it leaves the index.
    del store.docs[1]
    with app.app_context():
        index.schedule(session, KIND, 1)
        session.commit()
    assert search(app, None, "quarterly").total == 0


def test_a_locked_index_never_reaches_the_user(app, session, store, monkeypatch):
    from whoosh.index import LockError

    store.put(1, "Locked out")

    def locked(*_args, **_kwargs):
        raise LockError("someone else is writing")

    monkeypatch.setattr(index, "_writer", locked)
    with app.app_context():
        index.schedule(session, KIND, 1)
        session.commit()  # inline task: logged, not raised
    assert search(app, None, "locked").total == 0


def test_stemming_chinese_segmentation_and_title_boost(app, store):
    store.put(1, "Report template for the QBR", "A template our CSMs use every quarter.")
    store.put(2, "客户成功经理如何准备季度业务回顾", "需要一个报告模板。")
    store.put(3, "Quarterly numbers", "This mentions a report template deep in the body text.")
    store.put(4, "Mixed 中文 and English", "onboarding 上线 checklist")
    index_all(app, store)

    assert titles(search(app, None, "report templates")) == [
        "Report template for the QBR",
        "Quarterly numbers",
    ]  # the title match ranks first
    assert titles(search(app, None, "reporting"))[0] == "Report template for the QBR"
    assert titles(search(app, None, "客户成功")) == ["客户成功经理如何准备季度业务回顾"]
    assert titles(search(app, None, "季度业务")) == ["客户成功经理如何准备季度业务回顾"]
    assert titles(search(app, None, "上线 checklist")) == ["Mixed 中文 and English"]


def test_snippets_are_escaped_with_our_marks_only(app, store):
    store.put(1, "<b>Bold</b> title", "<script>alert(1)</script> the onboarding checklist")
    index_all(app, store)
    hit = search(app, None, "onboarding").hits[0]
    assert "<script>" not in hit.snippet and "&lt;script&gt;" in hit.snippet
    assert "<mark>onboarding</mark>" in hit.snippet
    assert str(hit.snippet).count("<") == str(hit.snippet).count("<mark>") * 2


def test_phrases_and_the_or_fallback(app, store):
    store.put(1, "Usage data export", "export the usage data weekly")
    store.put(2, "Usage of the export button", "data export usage")
    index_all(app, store)
    assert titles(search(app, None, '"export usage"')) == ["Usage of the export button"]
    found = search(app, None, "export nonexistentword")
    assert found.any_word and found.total == 2
    strict = search(app, None, "export usage")
    assert not strict.any_word and strict.total == 2


def test_a_phrase_is_found_wherever_its_words_stand(app, store):
    # A position step of 46 ends the stored value with the byte "." (0x2E), which whoosh-ng
    # took for an old pickled value: the phrase search failed for every document. The title
    # comes first in the indexed text, so the words are placed at every offset up to 80.
    for number in range(1, 81):
        filler = " ".join(f"word{n}" for n in range(number))
        store.put(number, f"Release notes {number}", f"{filler} quarterly export schedule")
    index_all(app, store)
    found = search(app, None, '"quarterly export"', per_page=100)
    assert found.message is None and found.total == 80


def test_did_you_mean_comes_from_the_vocabulary(app, store):
    store.put(1, "Configure single sign-on", "SAML settings")
    index_all(app, store)
    found = search(app, None, "configre")
    assert found.total == 0 and found.suggestion == "configure"
    assert search(app, None, "configure").suggestion is None


def test_did_you_mean_never_reveals_a_private_word(app, session, store):
    acme = OrganizationFactory()
    store.put(1, "Project nightingale launch plan", private_to_org_id=acme.id)
    index_all(app, store)
    assert search(app, None, "nightingal").suggestion is None
    assert search(app, UserFactory(organization=acme), "nightingal").suggestion == "nightingale"


def test_filters_in_the_query_text_and_facets(app, session, store):
    acme = OrganizationFactory(slug="acme")
    store.put(1, "Billing export", tags=("billing", "export"), answered=True, owner_org_id=acme.id)
    store.put(2, "Billing question", tags=("billing",), owner_org_id=acme.id)
    store.put(3, "Billing article", tags=("invoices",))
    index_all(app, store)
    assert search(app, None, "billing").kind_counts == {KIND: 3}
    assert search(app, None, "billing").tag_counts == [
        ("billing", 2),
        ("export", 1),
        ("invoices", 1),
    ]
    assert titles(search(app, None, "billing tag:export")) == ["Billing export"]
    assert sorted(titles(search(app, None, "tag:billing"))) == [
        "Billing export",
        "Billing question",
    ]
    assert titles(search(app, None, "billing is:answered")) == ["Billing export"]
    assert search(app, None, f"billing kind:{KIND}").total == 3
    assert search(app, None, "billing kind:nosuchkind").any_word  # searched as words
    assert search(app, None, "billing foo:bar").any_word  # unknown field: plain words

    customer = UserFactory(organization=acme)
    admin = staff(Role.VENDOR_ADMIN)
    with app.test_request_context():
        # org: is for staff; for others it is ignored (neither a filter nor words)
        assert query.search(session, customer, "billing org:acme").total == 3
        assert query.search(session, admin, "billing org:acme").total == 2
        assert query.search(session, admin, f"billing org:{acme.id}").total == 2
        assert query.search(session, admin, "billing org:nobody").total == 0


# --- visibility through every door ---------------------------------------------------------


@pytest.fixture
def two_orgs(session, store, app):
    acme, globex = OrganizationFactory(slug="acme"), OrganizationFactory(slug="globex")
    store.put(1, "Public roadmap notes", "everyone may read this")
    store.put(2, "Roadmap secrets of acme", private_to_org_id=acme.id, owner_org_id=acme.id)
    store.put(3, "Roadmap secrets of globex", private_to_org_id=globex.id, owner_org_id=globex.id)
    index_all(app, store)
    return {
        "acme": UserFactory(organization=acme),
        "globex": UserFactory(organization=globex),
        "staff": staff(Role.CSM),
    }


def _page_titles(client, text: str) -> str:
    response = client.get("/search", query_string={"q": text})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_private_documents_never_reach_other_orgs(client, two_orgs):
    html = _page_titles(client, "roadmap")
    assert "Public roadmap notes" in html and "secrets" not in html

    login(client, two_orgs["acme"])
    html = _page_titles(client, "roadmap")
    assert "Roadmap secrets of acme" in html and "globex" not in html
    suggestions = client.get("/search/suggest?q=roadm").get_json()
    assert {s["title"] for s in suggestions["results"]} == {
        "Public roadmap notes",
        "Roadmap secrets of acme",
    }
    api = client.get("/api/v1/search?q=roadmap").get_json()
    assert {i["title"] for i in api["items"]} == {"Public roadmap notes", "Roadmap secrets of acme"}
    assert api["meta"]["total"] == 2

    login(client, two_orgs["staff"])
    assert client.get("/api/v1/search?q=secrets").get_json()["meta"]["total"] == 2


def test_nothing_leaks_when_a_viewer_may_see_no_document_at_all(client, store, app):
    acme = OrganizationFactory()
    store.put(1, "Only private roadmap", private_to_org_id=acme.id)
    index_all(app, store)
    assert "Only private roadmap" not in _page_titles(client, "roadmap")
    assert client.get("/search/suggest?q=only").get_json()["results"] == []
    login(client, UserFactory())
    assert client.get("/api/v1/search?q=roadmap").get_json()["meta"]["total"] == 0
    assert client.get("/search/suggest?q=only").get_json()["results"] == []


def test_anonymous_suggest_and_api(client, two_orgs):
    body = client.get("/search/suggest?q=secr").get_json()
    assert body == {"query": "secr", "log_id": None, "results": []}
    assert client.get("/api/v1/search?q=roadmap").status_code == 401


def test_api_validates_and_is_documented(client, two_orgs):
    login(client, two_orgs["acme"])
    response = client.get("/api/v1/search?q=roadmap&per_page=500")
    assert response.status_code == 422 and "per_page" in response.get_json()["error"]["fields"]
    response = client.get("/api/v1/search?q=roadmap&kind=nope")
    assert response.status_code == 400 and "kind" in response.get_json()["error"]["fields"]
    response = client.get("/api/v1/search?q=roadmap&bogus=1")
    assert response.status_code == 422 and "bogus" in response.get_json()["error"]["fields"]
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "get" in spec["paths"]["/search"]


def test_search_page_shows_facets_suggestion_note_and_pages(client, store, app):
    for n in range(1, 24):
        store.put(n, f"Health score guide {n}", tags=("health",))
    store.put(99, "Configure alerts", tags=("alerts",))
    index_all(app, store)
    html = _page_titles(client, "health")
    assert "23 results" in html and "Page 1 of 3" in html
    assert 'href="/search?q=health&amp;tag=health"' in html
    assert "kind=note" in html and "Notes" in html
    html = client.get("/search?q=health&page=3").get_data(as_text=True)
    assert html.count('class="mb-3 search-hit"') == 3
    assert 'data-testid="did-you-mean"' in _page_titles(client, "confgure alerts")
    assert 'data-testid="any-word"' in _page_titles(client, "alerts zzzqqq")
    assert 'data-testid="no-results"' in _page_titles(client, "zzzqqq")
    html = client.get("/search?q=health&tag=health&kind=note").get_data(as_text=True)
    assert "23 results" in html and "Clear filters" in html


def test_search_page_runs_a_constant_number_of_queries(client, store, app, connection, session):
    login(client, UserFactory())

    def statements_for(count: int) -> int:
        for n in range(1, count + 1):
            store.put(n, f"Constant query page {n}")
        index_all(app, store)
        return count_statements(client, connection, "/search?q=constant")

    assert statements_for(2) == statements_for(10)


# --- hostile input -------------------------------------------------------------------------

NASTY = [
    '"unbalanced',
    "((((report",
    "report))))",
    "AND",
    "OR OR NOT",
    "report AND",
    "NOT report",
    "a" * 10_000,
    "report\x00template",
    "^(a+)+$",
    ".*[a-z]{2,}\\d",
    "title:foo content:bar id:1",
    "*:*",
    "rep*",
    "report~2",
    "report^10",
    "[a TO z]",
    "报告 report 模板 ✓ 🚀",
    "",
    "   ",
    "\\",
    "'",
    "kind:",
    "tag:",
    "is:",
]


@pytest.mark.parametrize("text", NASTY)
def test_hostile_input_gives_results_or_a_message(client, store, app, text):
    store.put(1, "Report template", "report body")
    index_all(app, store)
    response = client.get("/search", query_string={"q": text})
    assert response.status_code == 200
    assert client.get("/search/suggest", query_string={"q": text}).status_code == 200


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=300))
def test_any_text_searches_without_raising(app, store, text):
    if not store.docs:
        store.put(1, "Report template", "report body 报告")
        index_all(app, store)
    with app.app_context():
        found = query.search(None, None, text)
        assert found.message is None or isinstance(found.message, str)
        query.suggest(None, text)


def test_wildcards_are_not_wildcards(app, store):
    store.put(1, "Report template")
    index_all(app, store)
    assert search(app, None, "rep*").total == 0  # not a prefix query: "rep" as a word
    assert search(app, None, "*:*").total == 0


def test_long_queries_are_truncated_with_a_note(app, store):
    store.put(1, "Report template")
    index_all(app, store)
    found = search(app, None, "report " + "x" * 10_000)
    assert found.truncated


# --- rebuild, check, broken index ------------------------------------------------------------


def test_reindex_swaps_in_a_fresh_directory_and_check_reports_drift(app, store, session):
    for n in range(1, 6):
        store.put(n, f"Document number {n}")
    runner = app.test_cli_runner()
    result = runner.invoke(search_group, ["check"])
    assert result.exit_code == 1 and "missing 5" in result.output

    result = runner.invoke(search_group, ["reindex", "--procs", "1"])
    assert result.exit_code == 0, result.output
    assert "Indexed 5 documents" in result.output and "docs/s" in result.output
    root = Path(app.config["SEARCH_INDEX_DIR"])
    first = index.current_name(root)
    assert search(app, None, "document").total == 5

    result = runner.invoke(search_group, ["check"])
    assert result.exit_code == 0 and "up to date" in result.output

    store.put(2, "Document number two, edited", updated_at=T0 + timedelta(days=9))  # stale
    del store.docs[3]  # extra
    store.put(7, "A new document")  # missing
    with app.app_context():
        report = index.check(session)
    assert (report.missing, report.stale, report.extra) == (
        [f"{KIND}:7"],
        [f"{KIND}:2"],
        [f"{KIND}:3"],
    )
    assert runner.invoke(search_group, ["check"]).exit_code == 1

    result = runner.invoke(search_group, ["reindex", "--procs", "1"])
    assert result.exit_code == 0
    assert index.current_name(root) != first
    assert runner.invoke(search_group, ["check"]).exit_code == 0
    assert search(app, None, "document").total == 5
    assert runner.invoke(search_group, ["optimize"]).exit_code == 0


def test_a_rebuild_in_two_processes_finds_what_one_process_finds(app, store, session):
    english = ["report", "template", "renewal", "dashboard", "invoice", "churn", "seat", "export"]
    chinese = ["客户成功", "报表", "模板", "数据", "续约", "仪表板", "发票", "导出"]
    for n in range(1, 241):  # more than one batch for each writer process
        en, zh = english[n % 8], chinese[n // 8 % 8]
        store.put(n, f"{en} {zh} {n}", f"{zh} {en} " * (n % 5 + 1))
    queries = ["report", "template 数据", "客户成功", "报表 续约", "renewal 发票 dashboard"]
    root = Path(app.config["SEARCH_INDEX_DIR"])

    def answers() -> list[tuple[int, list[str]]]:
        query._local.__dict__.clear()  # the new directory, as a fresh request would see it
        # Every match, sorted: documents that score the same may come in another order (their
        # numbers in the index differ when two processes write them).
        found = [search(app, None, q, per_page=100) for q in queries]
        assert all(f.total <= 100 for f in found)
        return [(f.total, sorted(h.title for h in f.hits)) for f in found]

    with app.app_context():
        index.reindex(session, procs=1)
        one_process = answers()
        stats = index.reindex(session, procs=2)
    assert stats.documents == 240
    assert answers() == one_process
    assert all(total for total, _ in one_process)
    # One segment, written in Whoosh's own format: nothing of ours is needed to read it.
    ix = open_dir(str(root / index.current_name(root)))
    assert [type(s.codec()) for s in ix._segments()] == [W3Codec]
    assert ix.doc_count() == 240


MIXED_WORDS = [
    "report",
    "Templates",
    "the",
    "renewals",
    "running",
    "of",
    "dashboard",
    "客户成功经理如何导出报表",
    "报表",
    "模板",
    "的",
    "发票，续约",
    "API2",
]


def mixed_notes() -> Store:
    notes = Store()
    words = MIXED_WORDS
    for n in range(1, 401):  # terms with one, a few and several blocks (128) of postings
        text = " ".join(words[(n * k) % len(words)] for k in range(1, n % 7 + 2))
        if n % 50 == 0:  # long bodies: position steps of 128 and more
            text += " " + " ".join(f"filler{k % 300}" for k in range(n * 12)) + " report"
        notes.put(n, f"{words[n % 8]} {n}", f"{text} {n % 3}", tags=[words[n % 5]])
    return notes


def segment_files(directory: Path) -> dict[str, bytes]:
    """MAIN_<random segment id>.<what>: the segment's files by what each holds."""
    return {
        f.name.split(".", 1)[1]: f.read_bytes()
        for f in directory.iterdir()
        if f.name.startswith("MAIN_") and "." in f.name
    }


def whoosh_text_analyzer():
    """What the content field's analyzer replaces: Whoosh's own chain of filters."""
    from whoosh.analysis import LowercaseFilter, StemFilter, StopFilter

    from portal.search.schema import STOP_WORDS, MixedTokenizer

    return (
        MixedTokenizer()
        | LowercaseFilter()
        | StopFilter(stoplist=STOP_WORDS, minsize=1, renumber=False)
        | StemFilter(cachesize=50000)
    )


def test_our_index_writer_writes_the_bytes_whoosh_writes(tmp_path):
    """The analyzer, the positions' encoding, the posting pool and the codec are ours for
    speed: a segment written with them is the one Whoosh writes with its own, to the byte,
    whether the postings stay in memory or go through run files on disk."""
    from whoosh import index as whoosh_index
    from whoosh.fields import TEXT

    from portal.search.codec import new_writer
    from portal.search.schema import SCHEMA, build_schema

    stock = build_schema()
    stock.remove("content")
    stock.add("content", TEXT(analyzer=whoosh_text_analyzer(), phrase=True))

    notes = mixed_notes()

    def write(name, schema, open_writer, pool_limit=None):
        directory = tmp_path / name
        directory.mkdir()
        writer = open_writer(whoosh_index.create_in(str(directory), schema))
        if pool_limit:
            writer.pool.limit = pool_limit
        for doc in notes.docs.values():
            writer.add_document(**index.to_fields(doc))
        spilled = len(writer.pool.runs)
        writer.commit()
        return segment_files(directory), spilled

    whoosh, _ = write("whoosh", stock, lambda ix: ix.writer(codec=W3Codec(), compound=False))
    ours, _ = write("ours", SCHEMA, lambda ix: new_writer(ix, compound=False))
    on_disk, runs = write(
        "on-disk", SCHEMA, lambda ix: new_writer(ix, compound=False), pool_limit=200_000
    )
    assert {"trm", "pst", "_stored.col", "_content_len.col"} <= set(ours)
    assert runs >= 3
    assert ours == whoosh
    assert on_disk == whoosh


def test_merged_segments_are_written_as_whoosh_writes_them(tmp_path):
    """A merge reads other segments term by term, so its postings reach the pool out of
    document order: the pool must sort them as Whoosh does, deletions included."""
    from whoosh import index as whoosh_index

    from portal.search.codec import new_writer
    from portal.search.schema import SCHEMA

    notes = mixed_notes()
    docs = list(notes.docs.values())

    def write(name, open_writer):
        directory = tmp_path / name
        directory.mkdir()
        ix = whoosh_index.create_in(str(directory), SCHEMA)
        for part in (docs[:200], docs[200:]):  # two segments
            writer = open_writer(ix)
            for doc in part:
                writer.add_document(**index.to_fields(doc))
            writer.commit(merge=False)
        writer = open_writer(ix)
        for doc in (docs[4], docs[249]):  # replaced: deleted in their segment, added anew
            writer.update_document(**index.to_fields(doc))
        writer.commit(optimize=True)
        assert len(ix._segments()) == 1
        return segment_files(directory)

    ours = write("ours", lambda ix: new_writer(ix, compound=False))
    assert ours == write("whoosh", lambda ix: ix.writer(codec=W3Codec(), compound=False))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"positions": True, "chars": True},
        {"removestops": False, "positions": True},  # how the query parser sees stop words
        {"no_morph": True},
        {"tokenize": False},
        {"start_pos": 5, "start_char": 7, "positions": True, "chars": True},
    ],
)
def test_the_content_analyzer_gives_the_tokens_of_whoosh_filters(options):
    from portal.search.schema import FIELD_GAP, TextAnalyzer

    def tokens(analyzer, value):
        return [
            (
                t.text,
                t.stopped,
                t.pos if options.get("positions") else None,
                (t.startchar, t.endchar) if options.get("chars") else None,
            )
            for t in analyzer(value, mode="query", **options)
        ]

    ours, whoosh = TextAnalyzer(), whoosh_text_analyzer()
    values = [" ".join(MIXED_WORDS), f"Renewal{FIELD_GAP}The Reports 客户成功", "The", ""]
    for value in values:
        assert tokens(ours, value) == tokens(whoosh, value)
    positions: dict[str, list[int]] = {}
    for token in whoosh(values[0], positions=True):
        positions.setdefault(token.text, []).append(token.pos)
    assert ours.positions(values[0]) == positions


@pytest.mark.parametrize("check", [True, False], ids=["checked", "not checked"])
def test_a_new_process_compares_its_index_with_the_database(app, tmp_root, monkeypatch, check):
    """A process starting compares its index with the database (what the comparison logs is
    tested in tests/reliability/test_search_index_loss.py), unless
    COCREATE_SEARCH_STARTUP_CHECK is off."""
    from portal.app import create_app
    from tests.conftest import test_config

    compared: list[tuple[Path, bool]] = []

    def startup_check(root, session=None):
        compared.append((Path(root), session is not None))
        return True

    monkeypatch.setattr(index, "startup_check", startup_check)
    started = create_app(
        test_config(app.config["DATABASE_URL"], tmp_root, SEARCH_STARTUP_CHECK=check)
    )
    started.extensions["cocreate_engine"].dispose()
    if check:
        assert compared == [(Path(started.config["SEARCH_INDEX_DIR"]), True)]
    else:
        assert compared == []


def test_a_corrupt_index_is_reported_and_rebuilt(app, client, store):
    store.put(1, "Survives corruption")
    index_all(app, store)
    root = Path(app.config["SEARCH_INDEX_DIR"])
    ix_dir = root / index.current_name(root)
    for toc in ix_dir.glob("*.toc"):
        toc.unlink()
    index._INDEXES.clear()
    query._local.__dict__.clear()  # a fresh process
    assert index.startup_check(root) is False

    html = client.get("/search?q=survives").get_data(as_text=True)
    assert "Search is not available right now" in html
    runner = app.test_cli_runner()
    assert runner.invoke(search_group, ["check"]).exit_code == 1
    assert runner.invoke(search_group, ["reindex", "--procs", "1"]).exit_code == 0
    assert "Survives corruption" in client.get("/search?q=survives").get_data(as_text=True)


def test_a_worker_rebuilds_a_lost_index_without_an_operator(app, client, store, monkeypatch):
    for n in range(1, 4):
        store.put(n, f"Rebuilt by itself {n}")
    index_all(app, store)
    root = Path(app.config["SEARCH_INDEX_DIR"])
    requests: list[dict] = []
    monkeypatch.setattr(index.rebuild_task, "apply_async", lambda **kw: requests.append(kw))
    monkeypatch.setattr(index, "_REBUILD_REQUESTED", {})

    def lose_the_index() -> None:
        for toc in (root / index.current_name(root)).glob("*.toc"):
            toc.unlink()
        index._INDEXES.clear()
        query._local.__dict__.clear()  # a fresh process

    lose_the_index()
    # Inline (no broker): nothing can rebuild in the background; the log names the command.
    assert client.get("/search?q=rebuilt").status_code == 503
    assert requests == []

    monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", False)
    for _ in range(3):  # many searches, one request for a rebuild
        response = client.get("/search?q=rebuilt")
        assert response.status_code == 503 and response.headers["Retry-After"]
    assert len(requests) == 1

    with app.app_context():
        assert index.rebuild_task() == 3  # what the worker runs
        assert index.rebuild_task() == 0  # asked twice: in step by now, nothing rebuilt
    page = client.get("/search?q=rebuilt")
    assert page.status_code == 200 and "Rebuilt by itself 2" in page.get_data(as_text=True)


def test_each_app_has_its_own_index_directory(app, store, database_url, tmp_root):
    from portal.app import create_app
    from tests.conftest import test_config

    other = create_app(test_config(database_url, tmp_root))
    assert other.config["SEARCH_INDEX_DIR"] != app.config["SEARCH_INDEX_DIR"]


# --- concurrency ------------------------------------------------------------------------------


def test_readers_and_a_writer_at_the_same_time(app, store):
    for n in range(1, 40):
        store.put(n, f"Concurrent document {n}", "shared words for every reader")
    index_all(app, store)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            with app.app_context():
                while not stop.is_set():
                    assert query.search(None, None, "concurrent").total >= 39
                    query.suggest(None, "conc")
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    def writer() -> None:
        try:
            with app.app_context():
                for n in range(40, 60):
                    store.put(n, f"Concurrent document {n}")
                    index.apply_updates(None, [(KIND, n)])
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    write = threading.Thread(target=writer)
    write.start()
    write.join(timeout=60)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert search(app, None, "concurrent").total == 59


def test_sources_registered_by_features_are_untouched(store):
    assert KIND in sources()


def test_committed_content_is_searchable_within_a_second(app, session, store):
    import time

    store.put(1, "Fresh announcement about webhooks")
    started = time.perf_counter()
    with app.app_context():
        index.schedule(session, KIND, 1)
        session.commit()
    assert titles(search(app, None, "webhooks")) == ["Fresh announcement about webhooks"]
    assert time.perf_counter() - started < 1.0


def test_optimize_merges_segments_and_is_scheduled(app, store):
    for n in range(1, 4):
        store.put(n, f"Segment {n}")
    with app.app_context():
        _name, ix = index.open_index()
        for n in range(1, 4):
            writer = ix.writer()
            writer.add_document(**index.to_fields(store.docs[n]))
            writer.commit(merge=False)
        assert len(ix._segments()) == 3
        assert search(app, None, "segment").total == 3
        index.optimize()
        assert len(ix._segments()) == 1
    assert search(app, None, "segment").total == 3
    beat = app.extensions["celery"].conf.beat_schedule
    assert beat["search-optimize"]["task"] == "portal.search.optimize"


def test_suggestions_start_at_three_letters_or_two_chinese_characters(app, store):
    store.put(1, "Report template")
    store.put(2, "客户成功经理")
    index_all(app, store)
    with app.app_context():
        assert query.suggest(None, "re") == []
        assert [s.title for s in query.suggest(None, "rep")] == ["Report template"]
        assert [s.title for s in query.suggest(None, "客户")] == ["客户成功经理"]
        assert [s.title for s in query.suggest(None, "客户成")] == ["客户成功经理"]


def test_a_very_common_prefix_suggests_fast_and_never_another_orgs_private_titles(
    app, session, store
):
    acme = OrganizationFactory()
    # More documents share the prefix than suggestions score; the private ones come first
    # in index order, so a filter applied after the limit would show them.
    common = query.SUGGEST_SCORED_MAX + 50
    for n in range(1, common + 1):
        private = {"private_to_org_id": acme.id} if n <= common - 20 else {}
        store.put(n, f"Reporting note {n}", **private)
    index_all(app, store)
    with app.app_context():
        found = query.suggest(None, "rep", limit=8)
        mine = query.suggest(UserFactory(organization=acme), "rep", limit=8)
    assert len(found) == 8
    assert all(s.id > common - 20 for s in found)  # public only
    assert len(mine) == 8


def test_suggestions_can_be_limited_to_some_kinds(app, client, store):
    store.put(1, "Report template")
    index_all(app, store)
    with app.app_context():
        assert [s.title for s in query.suggest(None, "rep", kinds=[KIND])] == ["Report template"]
        assert query.suggest(None, "rep", kinds=["question"]) == []
    found = client.get("/search/suggest?q=rep&kind=question").get_json()["results"]
    assert found == []
    found = client.get(f"/search/suggest?q=rep&kind={KIND}").get_json()["results"]
    assert [r["title"] for r in found] == ["Report template"]


def test_remembered_searches_stay_within_the_organization_and_follow_the_index(app, session, store):
    acme, globex = OrganizationFactory(), OrganizationFactory()
    at_acme, at_globex = UserFactory(organization=acme), UserFactory(organization=globex)
    store.put(1, "Renewal checklist")
    store.put(2, "Renewal secrets", private_to_org_id=acme.id)
    index_all(app, store)
    both = ["Renewal checklist", "Renewal secrets"]
    for _ in range(2):  # the second round answers from what the searcher remembered
        assert sorted(titles(search(app, at_acme, "renewal"))) == both
        assert titles(search(app, at_globex, "renewal")) == ["Renewal checklist"]
        assert titles(search(app, None, "renewal")) == ["Renewal checklist"]

    store.put(3, "Renewal pricing")
    del store.docs[1]
    with app.app_context():
        index.apply_updates(None, [(KIND, 1), (KIND, 3)])
    assert titles(search(app, at_globex, "renewal")) == ["Renewal pricing"]
    assert sorted(titles(search(app, at_acme, "renewal"))) == ["Renewal pricing", "Renewal secrets"]


def test_a_remembered_results_page_is_in_each_readers_language(client, app, store):
    store.put(1, "Renewal checklist")
    store.put(2, "Renewal pricing")
    index_all(app, store)
    english = client.get("/search?q=renewal").get_data(as_text=True)
    chinese = client.get("/search?q=renewal", headers={"Accept-Language": "zh-CN"})
    chinese_html = chinese.get_data(as_text=True)
    assert "2 results" in english and "Renewal pricing" in english
    assert "2 results" not in chinese_html and "Renewal pricing" in chinese_html
    assert "2 results" in client.get("/search?q=renewal").get_data(as_text=True)
    # The same search typed differently links its facets to what was typed.
    spaced = client.get("/search?q=renewal++").get_data(as_text=True)
    assert "q=renewal++" in spaced or "q=renewal%20%20" in spaced


def test_chinese_is_cut_into_the_words_python_jieba_gives():
    """Segmentation runs on rjieba (jieba's dictionary and rules in Rust, 6x faster); the
    words must stay those of jieba itself, which the search behaviour was built on."""
    import random
    import warnings

    import rjieba

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jieba opens its dictionary without closing it
        import jieba

        jieba.setLogLevel(60)
        jieba.dt.check_initialized()
    common = sorted(
        (w for w, f in jieba.dt.FREQ.items() if f > 50 and 2 <= len(w) <= 4 and w.isalpha()),
        key=lambda w: (-jieba.dt.FREQ[w], w),
    )[:5000]
    rng = random.Random(5)
    runs = ["客户成功经理如何导出报表", "续约提醒邮件模板", "单点登录配置失败怎么办"]
    runs += ["".join(rng.choices(common, k=rng.randint(2, 12))) for _ in range(1500)]
    for run in runs:
        assert rjieba.tokenize(run, "search", False) == list(
            jieba.tokenize(run, mode="search", HMM=False)
        ), run
        assert rjieba.cut(run, False) == list(jieba.cut(run, HMM=False)), run


def test_searching_works_while_the_search_log_cannot_be_written(client, two_orgs, monkeypatch):
    """The log is bookkeeping: a lost lock race (SQLite's single writer) skips its row, and
    the suggestions and results still answer."""
    from sqlalchemy.exc import OperationalError

    from portal.search import service as search_service

    def busy(*_args, **_kwargs):
        raise OperationalError("INSERT INTO search_log", {}, Exception("database is locked"))

    monkeypatch.setattr(search_service, "log_search", busy)
    login(client, two_orgs["acme"])
    suggested = client.get("/search/suggest?q=secr")
    assert suggested.status_code == 200
    body = suggested.get_json()
    assert body["log_id"] is None and [r["title"] for r in body["results"]] == [
        "Roadmap secrets of acme"
    ]
    page = client.get("/search?q=roadmap")
    assert page.status_code == 200 and "Roadmap secrets of acme" in page.get_data(as_text=True)
