"""Knowledge base: staff articles, versions, feedback, promoted answers."""
