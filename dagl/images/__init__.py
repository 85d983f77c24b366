"""Image files and image measures: reading and writing (:mod:`.io`, with its limits and the TIFF/JPEG readers),
colour planes (:mod:`.colour`) and the protocol's metrics (:mod:`.metrics`)."""
