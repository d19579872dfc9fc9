"""Training data: the offline corpus builder (:mod:`.corpus`) and the dataset (:mod:`.dataset`)."""
