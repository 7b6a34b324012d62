"""Q&A: questions, answers, comments, votes, accepted answers."""
