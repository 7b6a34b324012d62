"""What Q&A tells other features without knowing them (the knowledge base listens)."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# sender: the Answer; kwargs: session, actor (User)
answer_accepted = _signals.signal("answer-accepted")
# sender: the Answer; kwargs: session, actor (User); fired after helpful_count changed
answer_marked_helpful = _signals.signal("answer-marked-helpful")
