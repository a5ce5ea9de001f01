"""The smoke suite: one pass over every documented promise, a task of each kind."""
