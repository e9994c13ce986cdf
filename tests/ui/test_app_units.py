"""The app's tabs without a browser: rendering, escaping, bad input, access control, read-only workbench."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from qa_system.types import Answer, FactStatus, FactView, Provenance, RankedEntity
from tests.ui.fakes import fake_pipeline
from ui import ask_tab, cypher_tab
from ui.auth import MaintainerAuth, Session, maintainer_only
from ui.format import relation_label

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def _fact(subject: str, relation: str, obj: str, s_name: str = "", o_name: str = "") -> FactView:
    return FactView(id=f"{subject}{obj}", subject=subject, subject_name=s_name or subject, relation=relation, object=obj,
                    object_name=o_name or obj, status=FactStatus.VERIFIED, confidence=1.0, provenance=Provenance(dataset="fb15k-237", split="train"))


def test_answer_and_evidence_picture_escape_everything() -> None:
    answer = Answer(
        question=XSS, answer=RankedEntity(id="/m/a", name=XSS, description=XSS, confidence=0.8), confidence=0.8, source="graph",
        topic_entities=[RankedEntity(id="/m/t", name=XSS, confidence=0.9)], message=XSS,
        evidence=[_fact("/m/t", "/x/<b>y</b>", "/m/a", XSS, XSS)],
    )
    for html in (ask_tab.answer_html(answer), ask_tab.evidence_svg(answer)):
        assert "<script>" not in html and "<img src=x" not in html and "<b>y</b>" not in html
        assert "&lt;script&gt;" in html


def test_evidence_picture_reads_topic_path_answer() -> None:
    answer = Answer(
        question="q", answer=RankedEntity(id="/m/a", name="Answer", confidence=0.9), confidence=0.9, source="graph",
        topic_entities=[RankedEntity(id="/m/t", name="Topic", confidence=0.9)],
        evidence=[_fact("/m/t", "/film/film/directed_by", "/m/m", "Topic", "Middle"), _fact("/m/a", "/people/person/spouse", "/m/m", "Answer", "Middle")],
    )
    svg = ask_tab.evidence_svg(answer)
    assert svg.index("Topic") < svg.index("Middle") < svg.rindex("Answer")
    assert "directed by" in svg and "spouse" in svg and ">TOPIC<" in svg and ">ANSWER<" in svg
    assert ">VIA<" in svg and "ALSO IN THE QUESTION" not in svg


def test_evidence_picture_marks_an_entity_the_question_also_names() -> None:
    answer = Answer(
        question="Which Christopher Nolan film starred Leonardo DiCaprio?", answer=RankedEntity(id="/m/i", name="Inception", confidence=0.7),
        confidence=0.7, source="graph", topic_entities=[RankedEntity(id="/m/d", name="Leonardo DiCaprio", confidence=0.9)],
        evidence=[_fact("/m/d", "/film/actor/film", "/m/i", "Leonardo DiCaprio", "Inception"),
                  _fact("/m/n", "/film/director/film", "/m/i", "Christopher Nolan", "Inception")],
    )
    svg = ask_tab.evidence_svg(answer)
    assert svg.index("Leonardo DiCaprio") < svg.index("Inception") < svg.rindex("Christopher Nolan")
    assert ">ALSO IN THE QUESTION<" in svg and ">VIA<" not in svg


def test_evidence_picture_with_two_named_entities_draws_no_line_through_a_box() -> None:
    """Constraints tie the answer to two other entities of the question: the second tie is an
    arc under the boxes, and every straight line stays in the gap between two neighbours."""

    import re

    answer = Answer(
        question="Which Christopher Nolan film with Michael Caine starred Leonardo DiCaprio?",
        answer=RankedEntity(id="/m/i", name="Inception", confidence=0.7), confidence=0.7, source="graph",
        topic_entities=[RankedEntity(id="/m/d", name="Leonardo DiCaprio", confidence=0.9)],
        evidence=[_fact("/m/d", "/film/actor/film", "/m/i", "Leonardo DiCaprio", "Inception"),
                  _fact("/m/n", "/film/director/film", "/m/i", "Christopher Nolan", "Inception"),
                  _fact("/m/i", "/film/film/starring", "/m/c", "Inception", "Michael Caine")],
    )
    svg = ask_tab.evidence_svg(answer)
    assert svg.count(">ALSO IN THE QUESTION<") == 2 and "director › film" in svg and "starring" in svg
    boxes = [(float(x), float(x) + float(w)) for x, w in re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)]
    assert len(boxes) == 4
    for x1, x2 in re.findall(r'<line x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)"', svg):
        assert not any(float(x1) < left and right < float(x2) for left, right in boxes)  # no box under a line
    arcs = re.findall(r'<path d="M([\d.]+),([\d.]+) Q[\d.]+,([\d.]+) ', svg)
    assert len(arcs) == 1
    _, start_y, control_y = map(float, arcs[0])
    view_height = float(re.search(r'viewBox="0 0 [\d.]+ ([\d.]+)"', svg).group(1))
    assert start_y < (start_y + control_y) / 2 < view_height - 16  # dips under the boxes, label inside the picture


@pytest.mark.parametrize(("source", "extra", "badge"), [
    ("graph", {}, "Graph"), ("graph-unsure", {}, "Graph · not sure"), ("none", {}, "No answer"),
    ("llm", {"validated": True}, "LLM · validated"), ("llm", {"validated": False}, "LLM · unvalidated"),
    ("llm-validated", {}, "LLM · validated"), ("llm-unvalidated", {}, "LLM · unvalidated"),
])
def test_source_badges(source: str, extra: dict, badge: str) -> None:
    class A:
        pass

    a = A()
    a.source = source
    for k, v in extra.items():
        setattr(a, k, v)
    assert ask_tab.BADGES[ask_tab.source_key(a)][0] == badge


def test_relation_labels_are_readable() -> None:
    assert relation_label("/film/director/film") == "director › film"
    assert relation_label("/people/person/nationality") == "nationality"
    assert relation_label("/film/film/starring./film/performance/actor") == "starring › actor"


def test_auth_rate_limits_wrong_passwords() -> None:
    now = [0.0]
    auth = MaintainerAuth(user="m", password="s3cret", free_attempts=2, clock=lambda: now[0])
    assert auth.login("ip", "m", "bad") == (False, "Wrong user name or password.")
    ok, text = auth.login("ip", "m", "bad")
    assert not ok and "wait 1 s" in text
    ok, text = auth.login("ip", "m", "s3cret")  # even the right password is refused while cooling down
    assert not ok and "Too many" in text
    now[0] += 1.5
    ok, text = auth.login("ip", "m", "bad")
    assert not ok and "wait 2 s" in text  # doubling
    assert auth.login("other-ip", "m", "s3cret")[0]
    now[0] += 2.5
    assert auth.login("ip", "m", "s3cret") == (True, "Logged in as m.")
    assert auth.login("ip", "m", "bad") == (False, "Wrong user name or password.")  # success reset the count


def test_no_password_means_no_login_in_production() -> None:
    class S:
        maintainer_user, maintainer_password, production = "maintainer", SecretStr(""), True

    auth = MaintainerAuth.from_settings(S(), generated_password="generated")
    assert not auth.enabled and "disabled" in auth.login("ip", "maintainer", "")[1]
    S.production = False
    assert MaintainerAuth.from_settings(S(), generated_password="generated").login("ip", "maintainer", "generated")[0]


def test_maintainer_only_refuses_anonymous_sessions() -> None:
    import gradio as gr

    guarded = maintainer_only(lambda session, x: x * 2)
    with pytest.raises(gr.Error):
        guarded(Session(), 2)
    with pytest.raises(gr.Error):
        guarded(None, 2)
    assert guarded(Session(maintainer=True, user="m"), 2) == 4


def test_workbench_refuses_writes_and_runs_templates(tiny_store) -> None:
    for query, params in cypher_tab.TEMPLATES.values():
        tiny_store.run_read_query(query, params, limit=5)  # every template is valid read-only Cypher
    with pytest.raises(Exception, match="read-only"):
        tiny_store.run_read_query("MATCH (e:Entity) DETACH DELETE e")
    assert cypher_tab.parse_params('{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError, match="JSON object"):
        cypher_tab.parse_params("[1]")


def test_app_builds_without_a_reader_and_with_a_fake_one(tiny_store) -> None:
    from ui.app import build_app

    assert build_app(tiny_store) is not None
    pipeline = fake_pipeline(tiny_store)
    assert build_app(tiny_store, pipeline, auth=MaintainerAuth(user="m", password="p")) is not None
    answer = pipeline.ask("Who directed Inception?")
    assert answer.answer.name == "Christopher Nolan" and answer.evidence


def test_serve_generates_credentials_once_outside_production(capsys) -> None:
    from qa_system.cli.serve_commands import _maintainer_auth
    from qa_system.config import load_settings

    auth = _maintainer_auth(load_settings(maintainer_password="", production=False))
    printed = capsys.readouterr().err
    assert auth.enabled and auth.password in printed and "maintainer" in printed
    assert not _maintainer_auth(load_settings(maintainer_password="", production=True)).enabled
    assert _maintainer_auth(load_settings(maintainer_password="chosen", production=True)).password == "chosen"
    assert "chosen" not in capsys.readouterr().err


def test_serve_starts_without_a_reader(tiny_store, tmp_path, monkeypatch) -> None:
    from qa_system.ask import reader_loading
    from qa_system.cli import serve_commands
    from qa_system.config import load_settings
    from ui.app import build_app

    monkeypatch.setattr(reader_loading, "shipped_reader", lambda: tmp_path / "no-reader")
    assert serve_commands._load_pipeline(load_settings(workspace=tmp_path), tiny_store) is None
    config = build_app(tiny_store, None).get_config_file()
    assert "reader model is not available" in str(config)
