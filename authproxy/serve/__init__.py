"""Running the process: service lifecycle, workers, hot reload, metrics and the admin port."""
