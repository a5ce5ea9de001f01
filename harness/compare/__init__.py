"""`harness compare BASELINE NEW`: is this release slower, or broken where the last one was not?"""
