"""The phases of one task execution, one module each: launch, prepare (+ partition, hints), transfer,
finalize, verify, report. :mod:`airflow_datasync.engine` runs them in order and re-exports their entry points.
"""
