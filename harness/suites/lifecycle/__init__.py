"""The lifecycle suite: concurrent clients on every channel, and the history they saw, checked."""
