"""Test support shared by every layer: names, the ledger table's shape, a Lambda context,
the EMF parser and the in-memory fakes of the product's ports (`tests.support.fakes`)."""
