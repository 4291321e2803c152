"""Galaxy-cluster finding on sky tiles: inputs for the networks (:mod:`.prep`), the red-sequence
baseline (:mod:`.redsequence`), training (:mod:`.train`) and scoring against the truth (:mod:`.score`)."""
