"""Customer-success data: account attributes, imported CRM records, health snapshots."""
