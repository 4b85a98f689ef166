"""The files backend: the design documents' exact layout, plain JSON, standard library only."""
