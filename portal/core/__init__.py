"""The kernel every feature stands on: database, identity, activity, mail, tasks, errors."""
