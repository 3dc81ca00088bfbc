"""Quality-diversity state and the maths on it, on pyribs and DEAP; imported as ``acdc_engine.archives``
(this folder, ``archives/``, mapped by ``package-dir`` in pyproject.toml)."""

from .diversity import vendi_score
from .cma_emitter import CMAEmitter
from .dominated_novelty import dominated_novelty
from .emitters import RecipeEmitter
from .factory import EMITTERS, KINDS, make_archive, make_emitter
from .model_archive import CVTModelArchive, GridModelArchive, ModelArchive, SkillDNSArchive
from .population_archive import PopulationArchive
from .task_force import coverage, greedy_task_force, select_task_force
from .pool_adaptation import Adaptation, plan_adaptation

__all__ = ["EMITTERS", "KINDS", "Adaptation", "CMAEmitter", "CVTModelArchive", "GridModelArchive", "ModelArchive", "PopulationArchive",
           "RecipeEmitter", "SkillDNSArchive", "coverage", "dominated_novelty", "greedy_task_force", "make_archive", "make_emitter", "plan_adaptation", "select_task_force",
           "vendi_score"]
