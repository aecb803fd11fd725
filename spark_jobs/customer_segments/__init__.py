"""The customer_segments job: RFM segments of the online_retail customers (KMeans)."""
