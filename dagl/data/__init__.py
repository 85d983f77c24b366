"""The paper's test sets, read the way the protocol obtains their degraded inputs (:mod:`.datasets`)."""
