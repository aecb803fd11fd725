"""The customer_value job: each customer's revenue so far and predicted for the next 90 days."""
