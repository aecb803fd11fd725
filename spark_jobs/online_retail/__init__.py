"""The online_retail job: daily purchase lines and per-customer daily sales."""
