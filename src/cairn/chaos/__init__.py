"""Testing real clusters under faults: workloads, fault injection, reports."""
