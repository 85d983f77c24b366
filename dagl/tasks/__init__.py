"""The paper's four tasks: the registry (:mod:`.configs`) and each task's behaviour (channels, degradations, test sets)."""
