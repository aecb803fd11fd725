"""The bank_reference job: the Berka bank's reference tables (accounts, clients, dispositions,
districts), each refreshed whole from one snapshot file."""
