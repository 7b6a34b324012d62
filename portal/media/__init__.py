"""Images in posts: uploaded from the Markdown editor, re-encoded, served under unguessable names."""
