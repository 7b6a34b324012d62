"""Data governance: personal data export, erasure, organization export and deletion,
retention, consent (GDPR / PIPL)."""
