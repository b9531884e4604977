"""One module per stage: orchestration and I/O only, each a plain function of the config."""
