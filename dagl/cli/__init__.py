"""What the ``dagl-*`` commands share: the console scripts (:mod:`.console`), options and the one error path
(:mod:`.common`), progress (:mod:`.progress`) and signal handling (:mod:`.interrupt`)."""
