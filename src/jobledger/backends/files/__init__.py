"""The files backend: the task-set and job file formats, plain JSON, standard library only."""
