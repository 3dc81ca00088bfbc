"""The models: a recipe (genome) made into weights, checkpoints read and written, seeds resolved, lineage
rebuilt, and the backend protocol that answers with them."""
