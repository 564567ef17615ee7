"""Learner simulator with ground truth: BKT and IRT families, behavioural states, oracle."""

from inference.lab.simulator.cohort import (
    CohortConfig,
    SkillBuilderSequence,
    learner_pseudonym,
    make_learner,
    simulate_cohort,
)
from inference.lab.simulator.columns import EVENT_TYPES, RELATIONS, EventColumns, ObjectTable
from inference.lab.simulator.learners import (
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
