"""The rate-limit suite: each group driven to its limit and judged against contracts/limits.yaml."""
