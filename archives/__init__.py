"""Quality-diversity state and the maths on it, on pyribs and DEAP; imported as ``acdc_engine.archives``
(this folder, ``archives/``, mapped by ``package-dir`` in pyproject.toml)."""

from acdc_engine.archives.diversity import vendi_score
from acdc_engine.archives.cma_emitter import CMAEmitter
from acdc_engine.archives.dominated_novelty import dominated_novelty
from acdc_engine.archives.emitters import RecipeEmitter
from acdc_engine.archives.factory import EMITTERS, KINDS, make_archive, make_emitter
from acdc_engine.archives.model_archive import CVTModelArchive, GridModelArchive, ModelArchive, SkillDNSArchive
from acdc_engine.archives.population import PopulationArchive
from acdc_engine.archives.task_force import coverage, greedy_task_force, select_task_force
from acdc_engine.archives.task_pool import Adaptation, plan_adaptation

__all__ = ["EMITTERS", "KINDS", "Adaptation", "CMAEmitter", "CVTModelArchive", "GridModelArchive", "ModelArchive", "PopulationArchive",
           "RecipeEmitter", "SkillDNSArchive", "coverage", "dominated_novelty", "greedy_task_force", "make_archive", "make_emitter", "plan_adaptation", "select_task_force",
           "vendi_score"]
