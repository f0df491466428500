"""Who is told what, and how: routing, messages, targets, the inbox, the job history."""
