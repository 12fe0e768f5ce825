"""Reliability scenarios: interruption and resume, faults, bad input and load.

A test harness of the repository, not part of the installed ``ray_nasrank`` package. Each
scenario runner returns a :class:`ScenarioResult` (cases tried, failures, seconds, details).
:func:`bench_reliability` runs them and writes the JSON (``python -m reliability`` from the
repository root; the harness owns its config, :class:`ReliabilityBenchConfig`); the tests in
``tests/test_reliability*.py`` and ``tests/test_fuzz*.py`` assert zero failures.

>>> from reliability import fuzz_arch_strings
>>> r = fuzz_arch_strings(10)
>>> (r.cases, r.failures)
(10, 0)
"""

from ._bench import SCENARIOS, ReliabilityBenchConfig, bench_reliability, main
from ._cli_resume import cli_search_interrupt, finished_trials
from ._core import CaseLog, CaseTimeout, ScenarioResult, rss_bytes, short_temp_dir, start_cluster, time_limit
from ._faults import (
                      FAULTS,
                      asktell_trial_faults,
                      atomic_write_kill,
                      fault_of,
                      faulty_table_trainable,
                      node_removal,
                      supernet_actor_kill,
                      tune_trial_faults,
                      unwritable_output,
)
from ._fuzz import fuzz_all, fuzz_arch_strings, fuzz_cli, fuzz_tables, fuzz_tune_spaces
from ._interrupt import (
                      EVERY_10_PERCENT,
                      asktell_interrupt,
                      checkpoints,
                      reliability_bench,
                      synthetic_value,
                      tune_interrupt,
)
from ._load import searcher_load
from ._mixed import finite_conditional_space, fuzz_mixed_configs, interrupt_mixed, suggest_config
from ._rundir import (
                      concurrent_runs,
                      optuna_non_finite,
                      prechecks,
                      run_dir_payloads,
                      run_dir_truncation,
                      state_payloads,
)

__all__ = [
    "SCENARIOS",
    "bench_reliability",
    "ReliabilityBenchConfig",
    "main",
    "CaseLog",
    "CaseTimeout",
    "ScenarioResult",
    "rss_bytes",
    "short_temp_dir",
    "start_cluster",
    "time_limit",
    "fuzz_all",
    "fuzz_arch_strings",
    "fuzz_cli",
    "fuzz_tables",
    "fuzz_tune_spaces",
    "EVERY_10_PERCENT",
    "asktell_interrupt",
    "checkpoints",
    "reliability_bench",
    "synthetic_value",
    "tune_interrupt",
    "FAULTS",
    "asktell_trial_faults",
    "atomic_write_kill",
    "fault_of",
    "faulty_table_trainable",
    "node_removal",
    "supernet_actor_kill",
    "tune_trial_faults",
    "unwritable_output",
    "searcher_load",
    "concurrent_runs",
    "optuna_non_finite",
    "prechecks",
    "run_dir_payloads",
    "run_dir_truncation",
    "state_payloads",
    "finite_conditional_space",
    "fuzz_mixed_configs",
    "interrupt_mixed",
    "suggest_config",
    "cli_search_interrupt",
    "finished_trials",
]
