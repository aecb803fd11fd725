"""The product_recommendations job: top products per customer from implicit-feedback ALS."""
