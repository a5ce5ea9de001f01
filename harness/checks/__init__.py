"""The rules, sans-I/O: records in, findings out; no sockets, no clocks, no sleeps."""
