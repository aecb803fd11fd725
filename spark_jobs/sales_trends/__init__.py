"""sales_trends: daily purchases per country and overall with their 7- and 30-day sums."""
