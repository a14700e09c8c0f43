"""The chaos harness: runs a workload on real processes while faults are applied, then checks the topics and
Cassandra (``python -m bench.chaos``; the checker alone: ``python -m bench.chaos.checker``).

Modules: ``workflows`` (the workload's workflows and steps, loaded with ``-A bench.chaos.workflows``),
``workload`` (the driver: starts runs, resumes hooks, follows completions), ``cluster`` (the processes under
test and the servers), ``faults`` (the fault schedule and resume times), ``checker`` (the invariants),
``__main__`` (the command).
"""
