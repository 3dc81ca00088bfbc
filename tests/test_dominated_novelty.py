"""The AC/DC paper's DNS score (archives/dominated_novelty.py), hand-computed from its definition."""

import numpy as np
import pytest

from acdc_engine.archives import SkillDNSArchive, dominated_novelty
from acdc_engine.archives.dominated_novelty import difficulty_weights
from acdc_engine.recipe import Recipe

S = np.array([
    [1, 1, 0, 0],  # A, fittest
    [1, 0, 1, 0],  # B
    [0, 0, 0, 1],  # C
], dtype=bool)


def test_difficulty_is_the_share_of_models_that_fail():
    assert difficulty_weights(S).tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])


def test_score_is_the_weighted_share_solved_that_fitter_models_miss():
    # weights 1/3, 2/3, 2/3, 2/3 (every task solved by someone): total 7/3
    # B vs A: B alone solves task 2 (2/3) -> 2/7; C vs A: task 3 -> 2/7, C vs B: task 3 -> 2/7
    scores = dominated_novelty(S, np.array([0.9, 0.5, 0.2]), k=3)
    assert scores[0] == np.inf
    assert scores[1] == pytest.approx(2 / 7) and scores[2] == pytest.approx(2 / 7)


def test_only_the_k_nearest_fitter_models_count():
    skills = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]], dtype=bool)  # third: fitter ones miss task 2 (and 0)
    # weights 1/3, 2/3, 2/3 -> total 5/3; vs row0: task 2 -> 2/5; vs row1: tasks 0, 2 -> 3/5
    one = dominated_novelty(skills, np.array([0.9, 0.8, 0.1]), k=1)
    two = dominated_novelty(skills, np.array([0.9, 0.8, 0.1]), k=2)
    assert one[2] == pytest.approx(2 / 5) and two[2] == pytest.approx(0.5)


def test_equal_fitness_the_earlier_row_is_the_fitter_so_one_clone_is_dominated():
    clones = np.array([[1, 0], [1, 0], [0, 1]], dtype=bool)
    scores = dominated_novelty(clones, np.array([0.5, 0.5, 0.5]), k=3)
    assert scores[0] == np.inf and scores[1] == 0.0 and scores[2] > 0


def test_the_distance_is_asymmetric():
    # the weaker model solves a superset of the fitter one's tasks: its own score is positive,
    # while the fitter model, had it a fitter neighbour like that, would score 0
    skills = np.array([[1, 0, 0], [1, 1, 0]], dtype=bool)
    assert dominated_novelty(skills, np.array([0.9, 0.1]), k=3)[1] > 0
    assert dominated_novelty(skills[::-1], np.array([0.9, 0.1]), k=3)[1] == 0.0


def test_nobody_solves_anything_scores_zero_below_the_fittest():
    scores = dominated_novelty(np.zeros((3, 4), dtype=bool), np.array([0.3, 0.2, 0.1]), k=3)
    assert scores[0] == np.inf and scores[1:].tolist() == [0.0, 0.0]


def test_the_archive_keeps_what_the_paper_score_prefers():
    archive = SkillDNSArchive(capacity=2, measure_dim=5, k_neighbors=3, seed=0)
    sol = np.empty(3, dtype=object)
    sol[:] = [Recipe(seed_spec=s) for s in "abc"]
    ids = np.empty(3, dtype=object)
    ids[:] = ["fit", "subset", "novel"]
    measures = np.array([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 1, 0, 0]], dtype=float) * 0.5  # padded slots
    archive.add(sol, np.array([0.9, 0.5, 0.3]), measures, model_id=ids, viable=np.ones(3, dtype=bool))
    assert sorted(archive.member_ids()) == ["fit", "novel"]
    scores = archive.member_scores()
    assert scores["fit"] == np.inf and scores["novel"] == pytest.approx(1 / 3)  # over the two kept: 0.5 / 1.5
