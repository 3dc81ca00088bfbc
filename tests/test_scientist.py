"""The scientist against a scripted OpenAI-compatible server and the real sandbox, and inside a tiny run."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

from acdc_engine.config import load_config
from acdc_engine.plugin_manager import build_plugin_manager
from acdc_engine.plugins.llm.llm_client import OpenAIChat
from acdc_engine.plugins.scientist import Scientist
from acdc_engine.tasks import TaskRequest, TaskSpec
from conftest import run_in_process

GOOD = '''class TaskFamily:
    @staticmethod
    def get_tasks():
        return {str(i): {"a": i, "b": OFFSET} for i in range(3)}

    @staticmethod
    def get_instructions(t):
        return f"What is {t['a']} + {t['b']}? Give the result after 'Answer:'."

    @staticmethod
    def score(t, submission):
        return float(submission.strip() == str(t["a"] + t["b"]))
'''
META = '{"name": "add-offset-%d", "description": "Add %d to a small number.", "capability": "arithmetic", "difficulty": 2}'


def task_reply(k: int, broken: bool = False) -> str:
    code = GOOD.replace("OFFSET", str(k)).replace("float(", "flaot(" if broken else "float(")
    return f"Here you go.\n```json\n{META % (k, k)}\n```\n```python\n{code}```\n"


class ScriptedScientist:
    """Writes task k (first broken when ``fix``), fixes it after seeing the error, then says DONE."""

    def __init__(self, *, fix=False, never_done=False, garbage_every=0):
        self.k, self.fix, self.never_done, self.garbage_every = 0, fix, never_done, garbage_every

    def __call__(self, messages):
        last = messages[-1]["content"]
        if messages[0]["role"] == "system" and len(messages) == 2:
            self.k += 1
            if self.garbage_every and self.k % self.garbage_every == 0:
                return "I would rather write a poem about tasks."
            return task_reply(self.k, broken=self.fix)
        if "was run in the sandbox" in last:
            if "ERROR" in last or self.never_done:
                return task_reply(self.k)
            return "Everything checks out.\nDONE"
        a, b = [int(x) for x in last.split("What is ")[1].split("?")[0].split(" + ")]
        return f"The sum is \\boxed{{{a + b}}}"


def scientist(url, reflections=3):
    llm = OpenAIChat(base_url=url, model="sci", api_key=None, temperature=0.7, max_tokens=256, timeout_s=5,
                     max_retries=0, concurrency=2)
    return Scientist(llm=llm, hook=build_plugin_manager([]).hook, limits=load_config().sandbox,
                     reflections=reflections, seed=0)


def parent() -> TaskSpec:
    return TaskSpec("p", "Add one to a number.", "arithmetic", 1, GOOD.replace("OFFSET", "1"), "taskgen")


def test_broken_task_is_fixed_from_sandbox_feedback_then_kept(chat_server):
    server = chat_server(ScriptedScientist(fix=True))
    spec = scientist(server.url).write(TaskRequest("initial", 1, 5, 3))
    assert spec.rejected is None and spec.name == "add-offset-1" and spec.generator == "scientist"
    assert "float(" in spec.source
    reflections = [r["messages"][-1]["content"] for r in server.requests if len(r["messages"]) > 2]
    assert "NameError" in reflections[0] and "flaot" in reflections[0]  # it saw its own error
    assert "score(): 1.0" in reflections[1]  # then its own answers, scored in the sandbox
    assert len(reflections) == 2


def test_never_done_is_rejected_with_the_reason(chat_server):
    server = chat_server(ScriptedScientist(never_done=True))
    spec = scientist(server.url, reflections=2).write(TaskRequest("initial", 1, 5, 3))
    assert spec.rejected == "not done after 2 reflections" and "class TaskFamily" in spec.source


def test_code_that_never_runs_is_rejected_as_failed_in_sandbox(chat_server):
    server = chat_server(lambda m: task_reply(1, broken=True) if "sandbox" not in m[-1]["content"] else "DONE")
    spec = scientist(server.url, reflections=2).write(TaskRequest("initial", 1, 5, 3))
    assert spec.rejected.startswith("failed in sandbox after 2 reflections: ERROR: score() raised NameError")


def test_garbage_and_dead_llm_are_rejected(chat_server):
    server = chat_server("no code here, sorry")
    assert scientist(server.url).write(TaskRequest("initial", 1, 5, 3)).rejected == \
        "unparseable: no `class TaskFamily` in the reply"
    dead = chat_server(500)
    spec = scientist(dead.url).write(TaskRequest("initial", 1, 5, 3))
    assert spec.rejected.startswith("llm error: LLM http://127.0.0.1") and "HTTP 500" in spec.rejected


def test_harder_and_novel_prompts_carry_parent_and_inspiration(chat_server):
    server = chat_server(ScriptedScientist())
    other = TaskSpec("caps", "Name the capital of a country.", "geography", 2, "x", "taskgen")
    sci = scientist(server.url)
    for mode, phrase in (("harder", "Write a harder variant"), ("novel", "related to the one below")):
        spec = sci.write(TaskRequest(mode, 1, 9, 3, parent(), "t0001", (other,)))
        first = [r for r in server.requests if len(r["messages"]) == 2][-1]["messages"][1]["content"]
        assert phrase in first and "Add one to a number." in first and '"b": 1}' in first
        assert "caps (geography, difficulty 2): Name the capital of a country." in first
        assert spec.parent_id == "t0001" and spec.params == {"mode": mode}


def test_tiny_run_with_the_scientist_records_rejects_and_status_shows_them(chat_server, tiny_config, tmp_path):
    server = chat_server(ScriptedScientist(garbage_every=3))
    config = tiny_config(**{"run.plugins": ["merge", "scientist"], "run.generations": 1, "llm.endpoint": server.url,
                            "llm.max_retries": 0, "scientist.reflections": 1, "tasks.initial_families": 4})
    run_in_process(config, tmp_path / "run")
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    rows = db.execute("SELECT generator, status, reason, generation FROM tasks ORDER BY id").fetchall()
    gen0 = [r for r in rows if r[3] == 0]
    assert [r[1] for r in gen0] == ["removed", "removed", "removed", "rejected"]  # tiny models solve nothing
    assert gen0[0][2] == "impossible: solved by no archive member"
    assert gen0[3][2] == "unparseable: no `class TaskFamily` in the reply"
    assert {r[0] for r in rows} == {"scientist"} and any(r[3] == 1 for r in rows)  # it adapted the pool too
    stats = json.loads(db.execute("SELECT stats FROM generations WHERE generation=0").fetchone()[0])
    assert stats["rejected_tasks"] == 1 and 1 <= stats["task_diversity"] <= 3
    out = subprocess.run([sys.executable, "-m", "acdc_engine", "status", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert "rejected by reason: unparseable" in out.stdout and "removed by reason: impossible 3" in out.stdout
    assert "task_diversity" in out.stdout
