"""Cocreate: a customer co-creation community and customer-success portal."""
