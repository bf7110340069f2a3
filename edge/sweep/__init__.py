"""`edgekit sweep`: a hardware-aware search for the most accurate model that fits the target.

space (the YAML search space) -> budget (figures of an untrained network, before training) ->
trial (train and score on validation) -> local (Optuna journal) or ray_tune (Ray Tune) -> results
(trial table, Pareto front, report) -> run (the orchestration and the final run of the best).
"""
