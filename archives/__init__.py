"""Quality-diversity state and the maths on it, on pyribs and DEAP."""

from acdc_engine.archives.diversity import vendi_score
from acdc_engine.archives.emitters import RecipeEmitter
from acdc_engine.archives.model_archive import ModelArchive
from acdc_engine.archives.task_force import coverage, greedy_task_force
from acdc_engine.archives.task_pool import Adaptation, plan_adaptation

__all__ = ["Adaptation", "ModelArchive", "RecipeEmitter", "coverage", "greedy_task_force", "plan_adaptation",
           "vendi_score"]
