"""The shop_events job: shop events, the daily session funnel and cart abandonment."""
