"""Named maintainers (issue 27 item 6) and the curators' panels, without a browser: the accounts file
(``qa_system.maintain.accounts``), ``qa-system users``, the app login with accounts and roles
(``ui.auth``), API keys tied to accounts and the client address behind a trusted proxy
(``ui.api_access``), and the merge / forget panels (``ui.maintain_panels``) on a real embedded store."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from pydantic import SecretStr

from qa_system.cli import main
from qa_system.errors import ConfigError, InputError
from qa_system.maintain import accounts as accounts_module
from qa_system.maintain.accounts import AccessDeniedError, AccountStore, require
from qa_system.maintain.review import ReviewFiles, read_jsonl
from tests.graph.bolt_server import bolt_server, neo4j_store  # noqa: F401  (fixtures)
from tests.maintain.test_forget_merge import _with_duplicate
from tests.test_ingest import workspace_of
from ui.api_access import ApiKeys, client_address, parse_proxies
from ui.auth import MaintainerAuth, Session, check_session, maintainer_only, requires
from ui.maintain_panels import MaintainPanels, by, ingested_documents, merge_preview

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at a test cost (the shipped cost is the library's default: ~64 MiB and tens of ms a hash)."""

    from argon2 import PasswordHasher

    monkeypatch.setattr(accounts_module, "_hasher", lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(accounts_module, "_DUMMY_HASH", [])


def team(ws: Path) -> AccountStore:
    store = AccountStore(ws)
    store.add("ann", "curator", PASSWORD)
    store.add("rob", "reviewer", PASSWORD + " 2")
    return store


def who(report) -> str:
    return getattr(report, "actor", "") or report.reviewer


# -- accounts --------------------------------------------------------------------------------------------
def test_accounts_hash_passwords_and_refuse_bad_input(tmp_path: Path) -> None:
    store = team(tmp_path)
    text = store.path.read_text()
    assert PASSWORD not in text and "$argon2id$" in text
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert [(a.name, a.role) for a in store.list()] == [("ann", "curator"), ("rob", "reviewer")]
    assert store.verify("ann", PASSWORD).role == "curator"
    assert store.verify("ann", "wrong password") is None and store.verify("nobody", PASSWORD) is None
    for bad in (lambda: store.add("ann", "curator", PASSWORD), lambda: store.add("bad name", "curator", PASSWORD),
                lambda: store.add("eve", "boss", PASSWORD), lambda: store.add("eve", "curator", "short"),
                lambda: store.remove("nobody")):  # fmt: skip
        with pytest.raises(InputError):
            bad()
    assert [a.name for a in store.list()] == ["ann", "rob"]  # nothing changed
    store.set_password("rob", "a new password")
    assert store.verify("rob", "a new password") is not None
    store.remove("rob")
    assert store.get("rob") is None and store.verify("rob", "a new password") is None


def test_roles_allow_what_the_issue_says() -> None:
    require("reviewer", "review", "rob")
    require("curator", "merge", "ann")
    with pytest.raises(AccessDeniedError, match="only a curator may merge entities; rob is a reviewer"):
        require("reviewer", "merge", "rob")
    with pytest.raises(AccessDeniedError, match="forget a document"):
        require("reviewer", "forget", "rob")


def test_users_command_never_takes_the_password_on_the_command_line(tmp_path: Path, capsys, monkeypatch) -> None:
    ws = ["--workspace", str(tmp_path)]
    with pytest.raises(SystemExit):
        main([*ws, "users", "add", "ann", "--role", "curator", "--password", PASSWORD])
    monkeypatch.setenv("QA_NEW_USER_PASSWORD", PASSWORD)
    assert main([*ws, "users", "add", "ann", "--role", "curator", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["role"] == "curator"
    assert main([*ws, "users", "add", "ann", "--role", "reviewer"]) == 2
    assert "already exists" in capsys.readouterr().err
    monkeypatch.delenv("QA_NEW_USER_PASSWORD")
    monkeypatch.setattr("sys.stdin", SimpleNamespace(isatty=lambda: False))
    assert main([*ws, "users", "add", "rob", "--role", "reviewer"]) == 2
    assert "set QA_NEW_USER_PASSWORD" in capsys.readouterr().err
    assert main([*ws, "users", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["accounts"]
    assert [(a["name"], a["role"]) for a in listed] == [("ann", "curator")] and "password_hash" not in listed[0]
    assert main([*ws, "users", "key", "ann", "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["api_key"]
    assert AccountStore(tmp_path).key_owner(key).name == "ann" and key not in AccountStore(tmp_path).path.read_text()
    assert main([*ws, "users", "remove", "nobody"]) == 2 and "no account named 'nobody'" in capsys.readouterr().err
    assert main([*ws, "users", "remove", "ann"]) == 0 and AccountStore(tmp_path).key_owner(key) is None


# -- the app login ---------------------------------------------------------------------------------------
def settings(ws: Path | None, **kw) -> SimpleNamespace:
    values = {"maintainer_user": "maintainer", "maintainer_password": SecretStr(""), "production": False,
              "workspace": ws, "trusted_proxies": ""} | kw  # fmt: skip
    return SimpleNamespace(**values)


def test_login_with_named_accounts_records_name_and_role(tmp_path: Path) -> None:
    team(tmp_path)
    auth = MaintainerAuth.from_settings(settings(tmp_path), generated_password="generated-one")
    session, text = auth.authenticate("ip", "rob", PASSWORD + " 2")
    assert (session.user, session.role, text) == ("rob", "reviewer", "Logged in as rob (reviewer).")
    assert auth.authenticate("ip", "maintainer", "generated-one")[0] is None  # accounts win over the single login
    wrong = auth.authenticate("ip2", "ann", "not her password")[1]
    assert wrong == auth.authenticate("ip3", "nobody", PASSWORD)[1] == "Wrong user name or password."
    assert check_session(session, "review") is session
    with pytest.raises(AccessDeniedError, match="rob is a reviewer"):
        check_session(session, "merge")
    with pytest.raises(gr.Error, match="only a curator may merge entities"):
        requires("merge")(lambda s: "ran")(session)
    assert requires("review")(lambda s: "ran")(session) == "ran"
    AccountStore(tmp_path).remove("rob")  # a removed account is out at its next click
    with pytest.raises(gr.Error, match="log in again"):
        maintainer_only(lambda s: "ran")(session)


def test_wrong_passwords_cool_down_per_client_with_accounts(tmp_path: Path) -> None:
    team(tmp_path)
    now = [0.0]
    auth = MaintainerAuth("maintainer", "", accounts=AccountStore(tmp_path), free_attempts=2, clock=lambda: now[0])
    assert auth.login("a", "ann", "bad") == (False, "Wrong user name or password.")
    ok, text = auth.login("a", "ann", "bad")
    assert not ok and "wait 1 s" in text
    assert "Too many" in auth.login("a", "ann", PASSWORD)[1]
    assert auth.login("b", "ann", PASSWORD)[0]  # another client is not locked out
    now[0] += 2
    assert auth.login("a", "ann", PASSWORD) == (True, "Logged in as ann (curator).")


def test_first_start_and_production_without_accounts(tmp_path: Path) -> None:
    dev = MaintainerAuth.from_settings(settings(tmp_path), generated_password="generated-one")
    session, _ = dev.authenticate("ip", "maintainer", "generated-one")
    assert session is not None and session.role == "curator"  # the single login is a curator
    prod = MaintainerAuth.from_settings(settings(tmp_path, production=True), generated_password="generated-one")
    assert not prod.enabled and "production mode and no account" in prod.login("ip", "maintainer", "generated-one")[1]
    team(tmp_path)  # an account configured: production logins work, by name
    assert prod.enabled and prod.authenticate("ip", "ann", PASSWORD)[0].user == "ann"


def test_serve_prints_a_generated_password_only_without_accounts(tmp_path: Path, capsys) -> None:
    from qa_system.cli.serve_commands import _maintainer_auth

    assert _maintainer_auth(settings(tmp_path)).password and "password" in capsys.readouterr().err
    team(tmp_path)
    auth = _maintainer_auth(settings(tmp_path))
    assert auth.uses_accounts() and "password" not in capsys.readouterr().err


# -- API keys and client addresses -------------------------------------------------------------------------
def test_client_address_believes_forwarded_for_only_from_a_trusted_proxy() -> None:
    proxies = parse_proxies("127.0.0.1, 10.0.0.0/8")
    assert client_address("203.0.113.9", "1.2.3.4", ()) == "203.0.113.9"  # not configured: ignored
    assert client_address("203.0.113.9", "1.2.3.4", proxies) == "203.0.113.9"  # peer is no proxy: ignored
    assert client_address("127.0.0.1", "1.2.3.4", proxies) == "1.2.3.4"
    assert client_address("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1", proxies) == "1.2.3.4"  # spoofed first hop ignored
    assert client_address("127.0.0.1", ["6.6.6.6", "1.2.3.4"], proxies) == "1.2.3.4"
    assert client_address("127.0.0.1", None, proxies) == "127.0.0.1"
    from qa_system.config import load_settings

    with pytest.raises(ConfigError, match="QA_TRUSTED_PROXIES"):
        load_settings(trusted_proxies="not-an-address")


def test_api_keys_tied_to_accounts(tmp_path: Path) -> None:
    store = team(tmp_path)
    rob_key = store.new_key("rob")
    keys = ApiKeys.parse("ann:env-key-1", accounts=store)
    assert keys.enabled and keys.match(rob_key) == "rob" and keys.match("env-key-1") == "ann" and keys.match("nope") is None
    keys.require("ann", "ingest")
    with pytest.raises(AccessDeniedError) as refused:
        keys.require("rob", "ingest")
    assert refused.value.http_status == 403
    with pytest.raises(ConfigError, match="'zed', who have no account"):
        ApiKeys.parse("zed:key-2", accounts=store)
    store.remove("ann")
    assert keys.match("env-key-1") is None  # its account is gone
    assert ApiKeys.parse("legacy-key").role_of("maintainer") == "curator"  # no accounts: as before


# -- merge and forget panels, batch and undo: on each backend ----------------------------------------------------
@pytest.fixture(params=["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def kg(request: pytest.FixtureRequest, tmp_path: Path):
    """(store holding the tiny KG, workspace folder) on each backend."""

    from graph.importers import import_kg
    from tests.conftest import write_tiny_kg

    if request.param == "embedded":
        from graph.embedded import EmbeddedStore

        store = EmbeddedStore.open(tmp_path / "ws")
        request.addfinalizer(store.close)
    else:
        store = request.getfixturevalue("neo4j_store")
    import_kg(store, write_tiny_kg(tmp_path / "kg"))
    return store, tmp_path / "ws"


def _ingest(store, ws: Path, documents: list) -> None:
    from qa_system.ingest.entity_resolution import EntityResolver
    from qa_system.ingest.ingester import Ingester
    from tests.ingest_support import RuleExtractor, ScriptedNameIndex

    resolver = EntityResolver(store, workspace=ws, name_index=ScriptedNameIndex({}))
    Ingester(store, RuleExtractor(), workspace=ws, resolver=resolver).ingest(documents)


def curator() -> Session:
    return Session(maintainer=True, user="ann", role="curator")


def reviewer() -> Session:
    return Session(maintainer=True, user="rob", role="reviewer")


def test_merge_panel_previews_then_merges_under_the_login(kg) -> None:
    tiny_store, ws = kg
    dup = _with_duplicate(tiny_store)
    panels = MaintainPanels(tiny_store, ws)
    preview = merge_preview(tiny_store, "/m/inception", dup.id)
    assert sum(preview["fate"].values()) == len(preview["rows"]) == 4 and preview["fate"]["moves"] == 1
    message, rows, pending, button = panels.preview_merge(curator(), {"entity": dup.id}, "/m/inception", "")
    assert "Merge preview" in message and len(rows) == 4 and pending == {"keep": "/m/inception", "duplicate": dup.id}
    assert button["interactive"] is True
    stats = tiny_store.stats()
    message, cleared, button, matches = panels.confirm_merge(curator(), pending, "same film")
    assert "Merged" in message and "by ann" in message and cleared == {} and matches["value"] == "/m/inception"
    assert tiny_store.get_entity(dup.id) is None and tiny_store.stats().entities == stats.entities - 1
    (record,) = read_jsonl(ReviewFiles(ws).audit)
    assert (record["action"], record.get("actor") or record["reviewer"]) == ("merge", "ann")


def test_merge_panel_bad_input_and_reviewers_change_nothing(kg) -> None:
    tiny_store, ws = kg
    dup = _with_duplicate(tiny_store)
    panels = MaintainPanels(tiny_store, ws)
    stats = tiny_store.stats()
    message, rows, pending, _ = panels.preview_merge(curator(), {"entity": dup.id}, dup.id, "")
    assert "cannot merge" in message and "into itself" in message and pending == {}
    assert "unknown entity" in panels.preview_merge(curator(), {"entity": dup.id}, "/m/nobody", "")[0]
    assert "Show an entity first" in panels.preview_merge(curator(), {}, "/m/inception", "")[0]
    assert "Preview the merge first" in panels.confirm_merge(curator(), {}, "")[0]
    with pytest.raises(gr.Error, match="only a curator may merge entities; rob is a reviewer"):
        requires("merge")(panels.confirm_merge)(reviewer(), {"keep": "/m/inception", "duplicate": dup.id}, "")
    with pytest.raises(gr.Error, match="login required"):
        requires("merge")(panels.confirm_merge)(Session(), {"keep": "/m/inception", "duplicate": dup.id}, "")
    assert tiny_store.stats() == stats and tiny_store.get_entity(dup.id) is not None
    assert read_jsonl(ReviewFiles(ws).audit) == []


def test_forget_panel_dry_run_first_then_forgets(kg) -> None:
    from qa_system.ingest.ingester import Document

    tiny_store, ws = kg
    before = tiny_store.stats()
    _ingest(tiny_store, ws, [Document("doc-a", "Alan Bean was born in Wheeler.", "t")])
    assert ingested_documents(ws) == [("doc-a (1 sentence)", "doc-a")]
    panels = MaintainPanels(tiny_store, ws)
    grown = tiny_store.stats()
    assert "unknown document" in panels.preview_forget(curator(), "doc-zzz")[0]
    message, rows, pending, button = panels.preview_forget(curator(), "doc-a")
    assert "Dry run" in message and len(rows) == 1 and pending == "doc-a" and button["interactive"] is True
    assert tiny_store.stats() == grown  # the preview wrote nothing
    assert "changed since the preview" in panels.confirm_forget(curator(), "doc-a", "doc-b", "")[0]
    with pytest.raises(gr.Error, match="only a curator may forget a document"):
        requires("forget")(panels.confirm_forget)(reviewer(), "doc-a", "doc-a", "")
    assert tiny_store.stats() == grown
    message, *_ = panels.confirm_forget(curator(), "doc-a", "doc-a", "by mistake")
    assert "Forgot" in message and "By ann" in message
    assert tiny_store.stats() == before and ingested_documents(ws) == []
    (record,) = read_jsonl(ReviewFiles(ws).audit)
    assert (record["action"], record.get("actor") or record["reviewer"], record["reason"]) == ("forget", "ann", "by mistake")


def test_by_names_the_actor_as_the_function_spells_it() -> None:
    def old(store, *, reviewer: str = "") -> None: ...
    def new(store, *, actor: str = "") -> None: ...

    assert by(old, "ann") == {"reviewer": "ann"} and by(new, "ann") == {"actor": "ann"}


# -- Review: batch decisions and undo --------------------------------------------------------------------------
def _listed(*_args) -> tuple:
    return ("refreshed",) * 6


def test_batch_decides_the_previewed_facts_under_the_login(kg) -> None:
    from evaluation.load_test import seed_proposed_facts
    from qa_system.maintain.review import ReviewQueue
    from ui.batch_panel import BatchPanel

    tiny_store, ws = kg
    seeded = seed_proposed_facts(tiny_store, 4)
    queue = ReviewQueue(tiny_store, ws)
    scores = sorted(f.provenance.score for f in queue.list(limit=10))
    bound = (scores[1] + scores[2]) / 2  # two facts score below it
    from ui.review_tab import ANY_RELATION, age_filter, fact_label

    panel = BatchPanel(queue, _listed, age_filter=age_filter, any_relation=ANY_RELATION, label=fact_label)
    message, pending, button = panel.preview(reviewer(), None, 0.0, None, bound, "reject")
    assert "Reject 2 proposed fact(s)" in message and len(pending["ids"]) == 2 and button["interactive"] is True
    refused = panel.apply(reviewer(), pending, "", None, 0.0, None)
    assert "reason is required" in refused[0] and len(queue.list(limit=10)) == len(seeded)  # nothing decided
    message, cleared, _, *listed = panel.apply(reviewer(), pending, "scores too low", None, 0.0, None)
    assert "Rejected 2 fact(s) by rob." in message and cleared == {} and listed == ["refreshed"] * 6
    left = queue.list(limit=10)
    assert len(left) == len(seeded) - 2 and all(f.provenance.score > bound for f in left)
    rejected = [tiny_store.get_fact(i) for i in pending["ids"]]
    assert {(f.status.value, f.provenance.reviewer) for f in rejected} == {("rejected", "rob")}
    again = panel.apply(curator(), pending, "again", None, 0.0, None)[0]  # decided already: counted, not overwritten
    assert "Rejected 0 fact(s)" in again and "2 had been decided by someone else" in again
    assert "No proposed fact matches" in panel.preview(reviewer(), None, 0.0, None, 0.0, "accept")[0]


def test_undo_panel_reviewers_undo_their_own_decisions_curators_any(kg) -> None:
    pytest.importorskip("qa_system.maintain.events")
    from evaluation.load_test import seed_proposed_facts
    from qa_system.maintain.review import ReviewQueue
    from ui.history_panel import HistoryPanel

    tiny_store, ws = kg
    first, second = seed_proposed_facts(tiny_store, 2)
    queue = ReviewQueue(tiny_store, ws)
    accepted = queue.accept(first, reviewer="rob")
    queue.reject(second, reviewer="ann", reason="wrong")
    panel = HistoryPanel(tiny_store, ws)
    rows, choices = panel.load(reviewer())
    assert [r[1:3] for r in rows[:2]] == [["reject", "ann"], ["accept", "rob"]]
    events = {r[1]: r[-1] for r in rows}
    message = panel.undo(reviewer(), events["reject"], "")[0]  # rob may not undo ann's decision
    assert "may undo only their own review decisions" in message and tiny_store.get_fact(second).status.value == "rejected"
    message = panel.undo(reviewer(), events["accept"], "my mistake")[0]
    assert "Undid the accept of rob" in message and tiny_store.get_fact(first).status.value == "proposed"
    assert accepted.fact_id == first
    assert "already undone" in panel.undo(curator(), events["accept"], "")[0]
    assert "unknown event" in panel.undo(curator(), "no-such-event", "")[0]
    assert "Undid the reject of ann" in panel.undo(curator(), events["reject"], "")[0]
    assert tiny_store.get_fact(second).status.value == "proposed"


def test_review_shows_what_the_graph_already_says_about_subject_and_relation(kg) -> None:
    tiny_store, _ = kg
    from qa_system.types import Fact, FactStatus, Provenance
    from ui.batch_panel import known_facts_html

    proposed = Fact(subject="/m/nolan", relation="/film/director/film", object="/m/titanic", status=FactStatus.PROPOSED,
                    provenance=Provenance(dataset="test"))  # fmt: skip
    tiny_store.upsert_facts([proposed])
    shown = known_facts_html(tiny_store, tiny_store.get_fact(proposed.id))
    assert "already says" in shown and "Inception" in shown and "Memento" in shown and "Titanic" not in shown
    alone = tiny_store.get_fact(next(f.id for f in tiny_store.list_facts(limit=50) if f.relation == "/film/film/genre"
                                     and f.subject == "/m/inception"))  # fmt: skip
    assert "nothing else" in known_facts_html(tiny_store, alone)


def test_api_records_a_key_under_its_account_and_refuses_a_reviewer_ingest(tiny_store) -> None:
    from fastapi.testclient import TestClient

    from evaluation.load_test import seed_proposed_facts
    from tests.ui.fakes import FakeExtractor, fake_pipeline
    from ui.api import ApiConfig, create_api

    ws = workspace_of(tiny_store)
    accounts = team(ws)
    rob = {"Authorization": f"Bearer {accounts.new_key('rob')}"}
    ann = {"X-API-Key": accounts.new_key("ann")}
    (fact,) = seed_proposed_facts(tiny_store, 1)
    config = ApiConfig(keys=ApiKeys.parse("", accounts=accounts, proxies="127.0.0.1"), rate_limit_per_minute=20)  # bursts of 2
    api = create_api(tiny_store, fake_pipeline(tiny_store), config=config, workspace=ws, extractor=FakeExtractor())
    with TestClient(api, client=("127.0.0.1", 5000)) as client:
        refused = client.post("/v1/ingest", headers=rob, json={"text": "Alan Bean was born in Wheeler.", "dry_run": True})
        assert refused.status_code == 403 and "only a curator may ingest documents; rob is a reviewer" in refused.json()["error"]
        accepted = client.post(f"/v1/review/{fact}/accept", headers=rob)
        assert accepted.status_code == 200 and accepted.json()["reviewer"] == "rob"
        assert tiny_store.get_fact(fact).provenance.reviewer == "rob"
        assert client.post("/v1/ingest", headers=ann, json={"text": "Alan Bean was born in Wheeler.", "dry_run": True}).status_code == 200
        # without a key the limit is per client address, read from X-Forwarded-For behind the trusted proxy
        ask = {"question": "Who directed Inception?"}
        codes = [client.post("/v1/ask", json=ask, headers={"X-Forwarded-For": "198.51.100.1"}).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert client.post("/v1/ask", json=ask, headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200
