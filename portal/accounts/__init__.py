"""Accounts: sign-up, sign-in, confirmation, password reset, profile, org member admin."""
