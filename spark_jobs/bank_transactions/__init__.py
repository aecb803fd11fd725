"""The bank_transactions job: daily bank transactions and per-account daily summaries."""
