"""Home page, language switcher, notifications and the development outbox."""
