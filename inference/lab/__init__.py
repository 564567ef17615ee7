"""Research code: what judges and trains the learner model, never imported by serving."""
