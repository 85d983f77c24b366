"""Peak memory of one network call: the estimate and the budget live in :mod:`dagl.memory` (training
bounds its batches with the same formula); re-exported here, where the inference path imports them."""

from dagl.memory import (ATTENTION_COPIES, DEFAULT_BUDGET, PIXEL_BYTES, MemoryBudgetError, attention_bytes,
                         check_memory, estimate_peak_bytes, memory_budget)

__all__ = ["ATTENTION_COPIES", "DEFAULT_BUDGET", "PIXEL_BYTES", "MemoryBudgetError", "attention_bytes",
           "check_memory", "estimate_peak_bytes", "memory_budget"]
