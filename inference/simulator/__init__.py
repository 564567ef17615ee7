"""Learner simulator with ground truth: BKT and IRT families, behavioural states, oracle."""

from inference.simulator.cohort import (
    CohortConfig,
    SkillBuilderSequence,
    learner_pseudonym,
    make_learner,
    simulate_cohort,
)
from inference.simulator.columns import EVENT_TYPES, RELATIONS, EventColumns, ObjectTable
from inference.simulator.learners import (
    FAMILIES,
    BKTLearner,
    EventLog,
    IRTLearner,
    SimulatedLearner,
)

__all__ = [
    "EVENT_TYPES",
    "FAMILIES",
    "RELATIONS",
    "BKTLearner",
    "CohortConfig",
    "EventColumns",
    "EventLog",
    "IRTLearner",
    "ObjectTable",
    "SimulatedLearner",
    "SkillBuilderSequence",
    "learner_pseudonym",
    "make_learner",
    "simulate_cohort",
]
