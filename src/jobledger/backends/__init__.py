"""Storage backends: a folder of JSON files, or PostgreSQL, behind one contract.

:func:`open_job_backend` and :func:`open_taskset_backend` are the one door: they tell a
folder from a ``postgresql://`` URL and open the matching backend. What every backend
implements is in ``_contract.py``; worker ids and the host name, shared by both, in
``_identity.py``.
"""

from ._open import open_job_backend, open_taskset_backend

__all__ = ["open_job_backend", "open_taskset_backend"]
