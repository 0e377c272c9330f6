"""A training job given as a script path (run as __main__ in the worker)."""

import os

from jupyter_jobctl import runtime as jc

job = jc.current()
job.log(f"script says {job.config['greeting']} from {os.getcwd()} with {os.environ['JOB_FLAVOUR']}")
for _ in job.progress(range(3), unit="step"):
    pass
