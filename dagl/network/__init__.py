"""The DAGL network itself: the model (:mod:`.model`) and its graph-based feature aggregation (:mod:`.gfam`)."""
