"""PySpark jobs. Shipped to EMR as spark_jobs.zip together with pipeline_core."""
