"""The face: what a user touches (CLI, server and page, worker, evaluation, adoption)."""
