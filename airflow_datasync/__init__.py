"""airflow-datasync: DataSync-style file tree migration and sync, natively in Apache Airflow 3."""

__version__ = "0.1.0"
