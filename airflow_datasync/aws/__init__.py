"""Driving the AWS DataSync *service* (a task defined in AWS) phase by phase from Airflow.

Airflow-free helpers shared by the start/report operators, the phase sensors and their trigger:
``status`` (AWS's status vocabulary and what it means for one phase), ``client`` (calls through the
Amazon provider's ``DataSyncHook``, errors mapped by type), ``request`` (StartTaskExecution arguments
validated with our options) and ``summary`` (DescribeTaskExecution as our report's shape).
"""
