"""Pure-Python core shared by the Lambdas and the Spark jobs (stdlib only, no boto3, no pyspark)."""
