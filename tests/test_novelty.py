"""Novelty filter, embeddings and Vendi diversity on the real all-MiniLM-L6-v2, and the LLM judges."""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest

from acdc_engine.archives import vendi_score
from acdc_engine.config import load_config
from acdc_engine.errors import AcdcError
from acdc_engine.hookspecs import hookimpl
from acdc_engine.plugin_manager import build_plugin_manager
from acdc_engine.plugins.llm import llm_gibberish
from acdc_engine.tasks import TaskSpec
from conftest import run_in_process

ADD = TaskSpec("add", "Add two whole numbers and give the sum.", "arithmetic", 1, "a", "x")
SUM = TaskSpec("sum", "Compute the sum of two integers.", "arithmetic", 1, "b", "x")
CAPITAL = TaskSpec("capital", "Name the capital city of a given country.", "geography", 1, "c", "x")
POEM = TaskSpec("rhyme", "Find a word that rhymes with a given English word.", "language", 2, "d", "x")


def configured(plugins, *overrides):
    config = load_config(None, list(overrides))
    pm = build_plugin_manager(plugins)
    pm.hook.acdc_configure(config=config, hook=pm.hook)
    return pm.hook


def novelty(hook, candidate, archive):
    return [r for r in hook.acdc_task_novelty(candidate=candidate, archive=archive) if r]


def test_vendi_score_counts_effective_distinct_items():
    assert vendi_score(np.ones((4, 3))) == pytest.approx(1.0)
    assert vendi_score(np.eye(5)) == pytest.approx(5.0)
    assert vendi_score(np.zeros((0, 3))) == 0.0
    assert 1.0 < vendi_score(np.array([[1, 0], [1, 0], [0, 1.0]])) < 2.0


def test_real_embeddings_separate_paraphrases_from_other_tasks():
    hook = configured([])
    e = hook.acdc_task_embeddings(texts=[t.description for t in (ADD, SUM, CAPITAL, POEM)])
    assert e.shape == (4, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    sims = e @ e.T
    assert sims[0, 1] > 0.6 and sims[0, 2] < 0.3 and sims[0, 3] < 0.3
    assert vendi_score(e) > vendi_score(e[[0, 1, 0, 1]])


def test_rule_judge_rejects_near_neighbours_and_lets_new_tasks_in():
    hook = configured(["novelty"], "novelty.threshold=0.6")
    (reason,) = novelty(hook, SUM, [ADD, CAPITAL])
    assert reason.startswith("not novel: similarity 0.") and "to 'add' (threshold 0.6)" in reason
    assert novelty(hook, POEM, [ADD, CAPITAL]) == []
    assert novelty(hook, ADD, []) == []


@pytest.mark.parametrize(("reply", "verdict"), [
    ("YES\nIt tests integers, not sums.", None),
    ("No. It is the same task reworded.", "not novel: judged not interestingly new beside 'add'"),
    ("Hmm, hard to say.", "not novel: similarity"),  # unclear: the deterministic rule decides
    (500, "not novel: similarity"),  # unreachable: the rule decides
])
def test_llm_judge_decides_on_near_neighbours(chat_server, reply, verdict):
    server = chat_server(reply)
    hook = configured(["novelty"], "novelty.threshold=0.6", "novelty.judge='llm'", f"llm.endpoint={server.url}",
                      "llm.max_retries=0")
    reasons = novelty(hook, SUM, [ADD, CAPITAL])
    assert (reasons == []) if verdict is None else reasons[0].startswith(verdict)
    question = server.requests[0]["messages"][0]["content"]
    assert "Compute the sum of two integers." in question and "Add two whole numbers" in question
    assert "capital" not in question  # only near neighbours are shown
    assert novelty(hook, POEM, [ADD, CAPITAL]) == [] and len(server.requests) == 1  # no neighbours: no LLM call


class Trio:
    """Three valid families at generation 0, two of them near duplicates."""

    @hookimpl
    def acdc_generate_tasks(self, request):
        code = ("class TaskFamily:\n    get_tasks = staticmethod(lambda: {'1': {'n': %d}})\n"
                "    get_instructions = staticmethod(lambda t: 'Say %d.')\n"
                "    score = staticmethod(lambda t, s: float(s.strip() == '%d'))\n")
        if request.mode == "initial":
            return [TaskSpec(t.name, t.description, t.capability, 1, code % (i, i, i), "trio")
                    for i, t in enumerate((ADD, SUM, CAPITAL))]
        return None


run = run_in_process


def test_tiny_run_with_novelty_keeps_near_duplicates_out_and_records_diversity(tiny_config, tmp_path):
    config = tiny_config(**{"run.plugins": ["merge", "novelty"], "run.generations": 0, "novelty.threshold": 0.6})
    evo = run(config, tmp_path / "run", [Trio()])
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    rows = db.execute("SELECT name, status, reason FROM tasks ORDER BY id").fetchall()
    assert [r[:2] for r in rows] == [("add", "active"), ("sum", "rejected"), ("capital", "active")]
    assert rows[1][2].startswith("not novel: similarity 0.") and "to 'add'" in rows[1][2]
    (diversity,) = evo.statistics.logbook.select("task_diversity")
    assert 1.5 < diversity <= 2.0  # two unrelated tasks


def test_pool_emptied_by_the_novelty_filter_stops_cleanly(tiny_config, tmp_path):
    config = tiny_config(**{"run.plugins": ["merge", "taskgen", "novelty"], "run.generations": 1,
                            "novelty.threshold": 0.95})
    with pytest.raises(AcdcError, match=r"task pool is empty at generation 1: .*\(rejected: not novel \d+\)"):
        run(config, tmp_path / "run")
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")  # tiny models solve nothing: all removed, none new
    assert db.execute("SELECT MAX(generation) FROM generations").fetchone()[0] == 0  # generation 0 is kept


def test_llm_gibberish_judge(chat_server):
    server = chat_server("BROKEN\nThe replies repeat one token.", "OK, sensible.", "whatever")
    hook = configured(["llm-gibberish"], f"llm.endpoint={server.url}", "llm.max_retries=0")
    replies = [f"reply number {i}" for i in range(20)]
    reasons = [r for r in hook.acdc_minimal_criterion(responses=replies) if r]
    assert reasons == ["gibberish: LLM judge: The replies repeat one token."]
    shown = server.requests[0]["messages"][0]["content"]
    assert len(re.findall(r"^Reply \d+:$", shown, re.M)) == 8 and "reply number 0" in shown and "reply number 19" in shown
    assert [r for r in hook.acdc_minimal_criterion(responses=replies) if r] == []  # OK
    assert [r for r in hook.acdc_minimal_criterion(responses=replies) if r] == []  # unclear: no opinion
    assert llm_gibberish.spread(list(range(3)), 8) == [0, 1, 2]


@pytest.mark.parametrize(("reply", "grade"), [("7\nMostly right.", 0.7), ("Grade: 10/10", 1.0), ("no idea", None)])
def test_llm_judge_hook(chat_server, reply, grade):
    server = chat_server(reply)
    hook = configured(["llm-judge"], f"llm.endpoint={server.url}", "llm.max_retries=0")
    assert hook.acdc_judge(question="2+2?", answer="4", rubric="exactly 4") == grade
    assert "exactly 4" in server.requests[0]["messages"][0]["content"]
