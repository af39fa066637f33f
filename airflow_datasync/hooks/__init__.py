"""Airflow hooks: credentials for remote locations, read from Airflow connections."""
